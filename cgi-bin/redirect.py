#!/usr/bin/env python3
"""Redirects (RFC 3875 section 6.2). By default a client redirect to this
site's home page (302, or ?status=301/303/307/308). ?local=1 is a local
redirect to /index.html, ?local=hello a local redirect to hello.py next to
this script: the server answers as if that URL had been asked for. The
targets are fixed, so this is no open redirect."""
import os
import sys
from urllib.parse import parse_qs

query = parse_qs(os.environ.get("QUERY_STRING", ""))
local = query.get("local", [""])[0]
out = sys.stdout

if local == "hello":
    directory = os.path.dirname(os.environ.get("SCRIPT_NAME", "/cgi-bin/redirect.py"))
    out.write("Location: {}/hello.py\r\n\r\n".format(directory.rstrip("/")))
elif local:
    out.write("Location: /index.html\r\n\r\n")
else:
    status = query.get("status", ["302"])[0]
    if status not in ("301", "302", "303", "307", "308"):
        status = "302"
    scheme = os.environ.get("REQUEST_SCHEME", "http")
    host = os.environ.get("HTTP_HOST") or "{}:{}".format(
        os.environ.get("SERVER_NAME", "localhost"), os.environ.get("SERVER_PORT", "80"))
    out.write("Status: {} Redirect\r\nLocation: {}://{}/index.html\r\n"
              "Content-Type: text/plain\r\n\r\nsee /index.html\n".format(status, scheme, host))
