#!/usr/bin/env python3
"""The smallest CGI program: a header block, a blank line, a body."""
import sys

out = sys.stdout.buffer
out.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n")
out.write(b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hello</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><a href="/">gatehouse</a><span>CGI demo</span></header><main>
<h1>Hello from a Python CGI script</h1>
<p>Two lines of output made this page: <code>Content-Type: text/html</code>, a blank line, then the HTML.</p>
</main></body></html>
""")
