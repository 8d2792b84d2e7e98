#!/usr/bin/env python3
"""The CGI environment of this request: an HTML table, or with
?format=text one NAME=value line per variable, sorted by name."""
import html
import os
import sys
from urllib.parse import parse_qs

out = sys.stdout.buffer
query = parse_qs(os.environ.get("QUERY_STRING", ""))
variables = sorted(os.environb.items())

if query.get("format", [""])[0] == "text":
    out.write(b"Content-Type: text/plain; charset=utf-8\r\n\r\n")
    for name, value in variables:
        out.write(name + b"=" + value + b"\n")
else:
    out.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n")
    rows = "".join(
        "<tr><th>{}</th><td>{}</td></tr>\n".format(
            html.escape(name.decode("utf-8", "replace")),
            html.escape(value.decode("utf-8", "replace")),
        )
        for name, value in variables
    )
    out.write(
        (
            "<!DOCTYPE html>\n<title>CGI environment</title>\n"
            "<h1>CGI environment</h1>\n<table>\n" + rows + "</table>\n"
        ).encode("utf-8")
    )
