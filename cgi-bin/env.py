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
    sys.exit(0)


def row(name, value):
    name = name.decode("utf-8", "replace")
    return '<tr{}><th>{}</th><td>{}</td></tr>\n'.format(
        ' class="http"' if name.startswith("HTTP_") else "",
        html.escape(name), html.escape(value.decode("utf-8", "replace")))


rows = "".join(row(name, value) for name, value in variables)
out.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n")
out.write("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CGI environment · gatehouse</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><a href="/">gatehouse</a><span>CGI demo</span></header><main>
<h1>CGI environment</h1>
<p class="lede">This program was started for your request alone, and this is everything
it was told: {count} environment variables. Request headers are the
<code>HTTP_*</code> ones.</p>
<p class="note">Try another query string (<a href="?colour=green&amp;size=9">?colour=green&amp;size=9</a>),
a path after the script name (<a href="{script}/extra/path">{script}/extra/path</a> sets
<code>PATH_INFO</code>), or <a href="?format=text">?format=text</a>.</p>
<div class="table-wrap"><table>
<thead><tr><th>variable</th><th>value</th></tr></thead>
<tbody>
{rows}</tbody></table></div>
</main></body></html>
""".format(count=len(variables), rows=rows,
           script=html.escape(os.environ.get("SCRIPT_NAME", ""))).encode("utf-8"))
