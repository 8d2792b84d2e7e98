#!/usr/bin/env python3
"""A form handled without the `cgi` module (removed in Python 3.13): GET
fields from QUERY_STRING, POST fields (urlencoded) from stdin."""
import html
import os
import sys
from urllib.parse import parse_qsl

method = os.environ.get("REQUEST_METHOD", "GET")
fields = parse_qsl(os.environ.get("QUERY_STRING", ""), keep_blank_values=True)
if method == "POST":
    length = int(os.environ.get("CONTENT_LENGTH") or 0)
    body = sys.stdin.buffer.read(length)
    content_type = os.environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        sys.stdout.write("Status: 415 Unsupported Media Type\r\nContent-Type: text/plain\r\n\r\n"
                         "send application/x-www-form-urlencoded\n")
        sys.exit(0)
    fields += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)

rows = "".join(
    "<tr><th>{}</th><td>{}</td></tr>\n".format(html.escape(k), html.escape(v)) for k, v in fields
)
page = """<!DOCTYPE html>
<title>Form</title>
<h1>Form ({method})</h1>
<form method="post" action="{action}">
<p><label>Name <input name="name"></label>
<p><label>Message <textarea name="message"></textarea></label>
<p><button>Send</button>
</form>
<table>
{rows}</table>
""".format(method=html.escape(method), action=html.escape(os.environ.get("SCRIPT_NAME", "")), rows=rows)
sys.stdout.buffer.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n" + page.encode("utf-8"))
