#!/usr/bin/env python3
"""One hello program, run two ways: as CGI (a new process for every
request: /cgi-bin/hello-dual.py) and as FastCGI (started once by gatehouse,
answering many requests: /fcgi/hello in conf/gatehouse.yaml).

It tells the two apart the way libfcgi's FCGI_Accept() did: under FastCGI
its fd 0 is a listening socket, under CGI it is the request body. The answer
is the same either way; only the pid and the request count show the
difference. htdocs/timing.html times both."""
import os
import socket
import sys
import time

STARTED = time.time()
served = 0


def hello(variables, mode):
    global served
    served += 1
    text = (
        "Hello from a {mode} program.\n"
        "mode={mode}\npid={pid}\nrequests_in_this_process={served}\n"
        "process_age_ms={age:.0f}\nscript_name={script}\n"
    ).format(mode=mode, pid=os.getpid(), served=served, age=(time.time() - STARTED) * 1000,
             script=variables.get("SCRIPT_NAME", ""))
    return b"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n\r\n" + text.encode()


def started_by_fastcgi():
    """True when fd 0 is a listening socket."""
    try:
        sock = socket.socket(fileno=os.dup(0))
    except OSError:
        return False  # a pipe, a file, nothing: CGI
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    except OSError:
        return False
    finally:
        sock.close()


def fastcgi_lib():
    # Only the FastCGI mode needs the protocol; CGI mode imports nothing more.
    here = os.path.dirname(os.path.realpath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "apps"))
    import fcgi_lite
    return fcgi_lite


if __name__ == "__main__":
    if started_by_fastcgi():
        fastcgi_lib().serve(lambda params, stdin: hello(params, "FastCGI"))
    else:
        sys.stdout.buffer.write(hello(os.environ, "CGI"))
