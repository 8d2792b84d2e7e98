#!/usr/bin/env python3
"""A form handled without the `cgi` module (removed in Python 3.13): GET
fields from QUERY_STRING, POST fields (urlencoded) from stdin."""
import html
import os
import sys
from urllib.parse import parse_qsl

method = os.environ.get("REQUEST_METHOD", "GET")
query = os.environ.get("QUERY_STRING", "")
fields = [("query", k, v) for k, v in parse_qsl(query, keep_blank_values=True)]
body = b""
if method == "POST":
    length = int(os.environ.get("CONTENT_LENGTH") or 0)
    body = sys.stdin.buffer.read(length)
    content_type = os.environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        sys.stdout.write("Status: 415 Unsupported Media Type\r\nContent-Type: text/plain\r\n\r\n"
                         "send application/x-www-form-urlencoded\n")
        sys.exit(0)
    fields += [("body", k, v) for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)]

rows = "".join(
    '<tr><td>{}</td><th>{}</th><td>{}</td></tr>\n'.format(source, html.escape(k), html.escape(v))
    for source, k, v in fields
) or '<tr><td colspan="3">No fields yet: send one of the forms.</td></tr>\n'
action = html.escape(os.environ.get("SCRIPT_NAME", ""))
page = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Form ({method}) · gatehouse</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><a href="/">gatehouse</a><span>CGI demo</span></header><main>
<h1>Form ({method})</h1>
<p class="lede">The same program reads both forms. A GET form's fields travel in the URL
and reach the program as <code>QUERY_STRING</code>; a POST form's fields travel in the
request body and reach it on standard input, <code>CONTENT_LENGTH</code> bytes of it.</p>
<h2>What arrived</h2>
<table id="fields">
<thead><tr><th>from</th><th>field</th><th>value</th></tr></thead>
<tbody>
{rows}</tbody></table>
<p class="note"><code>REQUEST_METHOD={method}</code>, <code>QUERY_STRING={query}</code>,
<code>CONTENT_LENGTH={length}</code></p>
<h2>Send it again</h2>
<form method="get" action="{action}" class="card" id="get-form">
<label>Greeting <input name="greeting" value="hello"></label>
<button>Send by GET</button>
</form>
<form method="post" action="{action}" class="card" id="post-form">
<label>Name <input name="name"></label>
<label>Message <textarea name="message" rows="3"></textarea></label>
<button>Send by POST</button>
</form>
</main></body></html>
""".format(method=html.escape(method), action=action, rows=rows, query=html.escape(query),
           length=len(body) if method == "POST" else "(unset)")
sys.stdout.buffer.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n" + page.encode("utf-8"))
