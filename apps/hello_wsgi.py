#!/usr/bin/env python3
"""A small WSGI app behind gatehouse through flup's FastCGI server.

gatehouse starts it (a `spawn:` route) with a listening socket as fd 0, the
FastCGI convention: `WSGIServer(app).run()` with no bindAddress takes it.
It can also run on its own address:  python3 hello_wsgi.py 127.0.0.1:9001

    GET  /wsgi/anything      shows SCRIPT_NAME, PATH_INFO, QUERY_STRING, pid
                             (as an HTML page of the whole environ when the
                             client prefers HTML, as browsers do)
    POST /wsgi/echo          sends the request body back
"""
import html
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
    if "text/html" in environ.get("HTTP_ACCEPT", ""):
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Vary", "Accept")])
        return [page(environ).encode("utf-8")]
    lines = [
        "hello from flup",
        "SCRIPT_NAME=" + environ.get("SCRIPT_NAME", ""),
        "PATH_INFO=" + environ.get("PATH_INFO", ""),
        "QUERY_STRING=" + environ.get("QUERY_STRING", ""),
        "REQUEST_METHOD=" + method,
        "SERVER_SOFTWARE=" + environ.get("SERVER_SOFTWARE", ""),
        "pid=%d" % os.getpid(),
    ]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Vary", "Accept")])
    return [("\n".join(lines) + "\n").encode("utf-8")]


def page(environ):
    """The environ as the application sees it: CGI's variables and WSGI's own keys."""
    rows = "".join(
        '<tr{}><th>{}</th><td>{}</td></tr>\n'.format(
            ' class="http"' if key.startswith("wsgi.") else "", html.escape(key), html.escape(repr(value)
            if key.startswith("wsgi.") else str(value)))
        for key, value in sorted(environ.items())
    )
    here = html.escape(environ.get("SCRIPT_NAME", "") + "/some/path?x=1")
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>WSGI through flup · gatehouse</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><a href="/">gatehouse</a><span>FastCGI → WSGI demo</span></header><main>
<h1>Hello from a WSGI application</h1>
<p class="lede">A Python function, <code>app(environ, start_response)</code>, running in a
process that gatehouse started once (pid <strong id="pid">{pid}</strong>). flup's FastCGI
server turned the request's records into this <code>environ</code>: the CGI variables,
plus the <code>wsgi.*</code> keys (highlighted).</p>
<p class="note"><code>SCRIPT_NAME</code> is where the application is mounted
(<code>{script}</code>), <code>PATH_INFO</code> the rest: try <a href="{here}">{here}</a>.
Reload: the pid changes only between the two copies gatehouse runs.</p>
<div class="table-wrap"><table>
<thead><tr><th>key</th><th>value</th></tr></thead>
<tbody>
{rows}</tbody></table></div>
</main></body></html>
""".format(pid=os.getpid(), script=html.escape(environ.get("SCRIPT_NAME", "")), here=here, rows=rows)


if __name__ == "__main__":
    bind = None
    if len(sys.argv) > 1:
        host, _, port = sys.argv[1].rpartition(":")
        bind = (host, int(port)) if host else sys.argv[1]
    WSGIServer(app, bindAddress=bind).run()
