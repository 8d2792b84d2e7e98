#!/usr/bin/env python3
"""A small WSGI app behind gatehouse through flup's FastCGI server.

gatehouse starts it (a `spawn:` route) with a listening socket as fd 0, the
FastCGI convention: `WSGIServer(app).run()` with no bindAddress takes it.
It can also run on its own address:  python3 hello_wsgi.py 127.0.0.1:9001

    GET  /wsgi/anything      shows SCRIPT_NAME, PATH_INFO, QUERY_STRING, pid
    POST /wsgi/echo          sends the request body back
"""
import os
import sys

from flup.server.fcgi import WSGIServer


def app(environ, start_response):
    method = environ.get("REQUEST_METHOD", "GET")
    if method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response("200 OK", [
            ("Content-Type", environ.get("CONTENT_TYPE") or "application/octet-stream"),
            ("X-Received-Length", str(len(body))),
        ])
        return [body]
    lines = [
        "hello from flup",
        "SCRIPT_NAME=" + environ.get("SCRIPT_NAME", ""),
        "PATH_INFO=" + environ.get("PATH_INFO", ""),
        "QUERY_STRING=" + environ.get("QUERY_STRING", ""),
        "REQUEST_METHOD=" + method,
        "SERVER_SOFTWARE=" + environ.get("SERVER_SOFTWARE", ""),
        "pid=%d" % os.getpid(),
    ]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [("\n".join(lines) + "\n").encode("utf-8")]


if __name__ == "__main__":
    bind = None
    if len(sys.argv) > 1:
        host, _, port = sys.argv[1].rpartition(":")
        bind = (host, int(port)) if host else sys.argv[1]
    WSGIServer(app, bindAddress=bind).run()
