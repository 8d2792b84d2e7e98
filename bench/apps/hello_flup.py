#!/usr/bin/env python3
"""The flup hello app of the benchmark (a WSGI app behind flup's threaded
FastCGI server).

    python3 hello_flup.py /path/to/socket   # listens on a Unix socket
    python3 hello_flup.py                   # FastCGI on fd 0 (gatehouse spawn:)
"""
import os
import sys

from flup.server.fcgi import WSGIServer

BODY = b"hello from flup\n"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


if __name__ == "__main__":
    if len(sys.argv) > 1:
        path = sys.argv[1]
        if os.path.exists(path):
            os.unlink(path)
        WSGIServer(app, bindAddress=path, umask=0).run()
    else:
        WSGIServer(app).run()
