#!/usr/bin/env python3
"""Start a managed FastCGI backend if what it needs is installed; otherwise
answer on its socket with a page that says how to install it.

    needs.py --program php-cgi --install "apt-get install php-cgi" -- php-cgi
    needs.py --module flup --install "pip install flup" -- python3 hello_wsgi.py
    needs.py --program php-fpm --program php-cgi --install "apt-get install php-fpm" \
        -- python3 php_fpm_fd0.py --fallback php-cgi

A program counts as installed when it is on PATH or in an sbin directory
(Debian puts daemons such as php-fpm in /usr/sbin, which is not on a normal
user's PATH), under its own name or with a version after it (php-fpm8.2).
With --program given more than once, any one of them will do.

gatehouse starts this with the listening socket as fd 0 (a `spawn:` route).
When the program is there (or the Python module imports), this process
becomes COMMAND (exec: same pid, same fd 0). When it is not, it serves every
request with a 503 page naming the missing piece and the command that
installs it, instead of exiting at once: a backend that exits at once is
restarted with a back-off by gatehouse and each request gets a bare 502.
It looks again every few seconds and, once the piece is installed, exits:
gatehouse starts it anew, and this time it becomes COMMAND.
"""
import argparse
import html
import importlib.util
import os
import re
import shutil
import sys
import threading
import time

import fcgi_lite


SBIN = ["/usr/local/sbin", "/usr/sbin", "/sbin"]


def find_program(name):
    """The path of the program NAME, or None: NAME itself on PATH or in an
    sbin directory, else the highest NAME<version> there (php-fpm8.2)."""
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    dirs += [d for d in SBIN if d not in dirs]
    found = shutil.which(name, path=os.pathsep.join(dirs))
    if found or os.sep in name:
        return found
    versioned = []
    for d in dirs:
        try:
            entries = os.listdir(d or ".")
        except OSError:
            continue
        for entry in entries:
            version = entry[len(name):] if entry.startswith(name) else ""
            path = os.path.join(d, entry)
            if re.fullmatch(r"\d+(\.\d+)*", version) and os.access(path, os.X_OK):
                versioned.append((tuple(int(n) for n in version.split(".")), path))
    return max(versioned)[1] if versioned else None


def missing(args):
    if args.program and not any(find_program(p) for p in args.program):
        where = "not found on PATH or in {}".format(", ".join(SBIN))
        if len(args.program) == 1:
            return "the program {} ({})".format(args.program[0], where)
        return "one of the programs {} ({})".format(" or ".join(args.program), where)
    if args.module and importlib.util.find_spec(args.module) is None:
        return "the Python module {} (not importable by {})".format(args.module, sys.executable)
    return None


def explanation(what, args):
    page = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not installed · gatehouse</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><a href="/">gatehouse</a></header><main>
<h1>{title} is not installed</h1>
<p class="lede">This part of the demo is a FastCGI application that gatehouse starts
itself. What it needs is missing on this machine: {what}.</p>
<p>To enable it, install it and reload this page after a few seconds:</p>
<pre>{install}</pre>
<p class="note">What answered you instead is a small stand-in, <code>apps/needs.py</code>:
it took the FastCGI socket gatehouse gave it and sent this page, which is why you see a
503 page rather than a bare 502 Bad Gateway. It checks again every few seconds and makes
way for the real application as soon as it can run.</p>
<p><a href="/">Back to the demo</a></p>
</main></body></html>
""".format(title=html.escape(args.title), what=html.escape(what), install=html.escape(args.install))
    return ("Status: 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Cache-Control: no-store\r\n\r\n" + page).encode("utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--program", action="append",
                        help="a program that must be installed (repeat: any one of them)")
    parser.add_argument("--module", help="a Python module that must import")
    parser.add_argument("--title", default="This backend", help="what to call it on the page")
    parser.add_argument("--install", required=True, help="the command that installs it")
    parser.add_argument("command", nargs="+", help="what to run when nothing is missing")
    args = parser.parse_args()
    what = missing(args)
    if what is None:
        os.execvp(args.command[0], args.command)
    sys.stderr.write("needs.py: missing {}; serving an explanation instead\n".format(what))
    sys.stderr.flush()
    page = explanation(what, args)
    threading.Thread(target=watch, args=(args,), daemon=True).start()
    fcgi_lite.serve(lambda params, stdin: page)


def watch(args):
    """Exit once nothing is missing; gatehouse's restart then runs COMMAND."""
    while missing(args):
        time.sleep(3)
    what = [p for p in args.program or [] if find_program(p)] or [args.module]
    sys.stderr.write("needs.py: {} is there now; handing over\n".format(what[0]))
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
