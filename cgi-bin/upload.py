#!/usr/bin/env python3
"""A multipart/form-data upload parsed by hand, byte-exact: for every part,
its field name, file name, size and sha256. GET shows the form; with
?format=text the report is one `name=... filename=... size=N sha256=HEX`
line per part."""
import hashlib
import html
import os
import re
import sys
from urllib.parse import parse_qs

out = sys.stdout.buffer
text = parse_qs(os.environ.get("QUERY_STRING", "")).get("format", [""])[0] == "text"


def fail(status, message):
    out.write("Status: {}\r\nContent-Type: text/plain\r\n\r\n{}\n".format(status, message).encode())
    sys.exit(0)


def param(header, name):
    """A parameter of a header value: name="quoted" or name=token."""
    match = re.search(r';\s*' + name + r'="((?:[^"\\]|\\.)*)"', header, re.I)
    if match:
        return re.sub(r'\\(.)', r'\1', match.group(1))
    match = re.search(r';\s*' + name + r'=([^\s;]+)', header, re.I)
    return match.group(1) if match else None


def parts(body, boundary):
    # Every delimiter is CRLF "--" boundary (RFC 2046 section 5.1.1); the
    # CRLF before the first one may be missing, so add it.
    delimiter = b"\r\n--" + boundary
    for chunk in (b"\r\n" + body).split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            fail("400 Bad Request", "a part without a blank line")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.decode("utf-8", "replace").partition(":")
            headers[name.strip().lower()] = value.strip()
        yield headers, content


HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · gatehouse</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><a href="/">gatehouse</a><span>CGI demo</span></header><main>
<h1>{title}</h1>
"""
FORM = """<form method="post" enctype="multipart/form-data" class="card" id="upload-form">
<label>File <input type="file" name="file" required></label>
<label>Note <input name="note" placeholder="optional: sent as a second part"></label>
<button>Upload</button>
</form>
"""

if os.environ.get("REQUEST_METHOD") != "POST":
    out.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n")
    out.write((HEAD.format(title="Upload a file") + """<p class="lede">The browser sends the
file as one part of a <code>multipart/form-data</code> body. gatehouse streams that body to
this program's standard input; the program splits it into parts and reports what arrived.</p>
""" + FORM + """<p class="note">Compare the SHA-256 it reports with what <code>sha256sum FILE</code> says
on your machine: the same digest means the same bytes arrived.</p>
</main></body></html>
""").encode("utf-8"))
    sys.exit(0)

content_type = os.environ.get("CONTENT_TYPE", "")
boundary = param(content_type, "boundary")
if not content_type.lower().startswith("multipart/form-data") or not boundary:
    fail("400 Bad Request", "send multipart/form-data with a boundary")
body = sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH") or 0))

report = []
for headers, content in parts(body, boundary.encode("latin-1")):
    disposition = headers.get("content-disposition", "")
    report.append((param(disposition, "name") or "", param(disposition, "filename") or "",
                   len(content), hashlib.sha256(content).hexdigest()))

if text:
    out.write(b"Content-Type: text/plain; charset=utf-8\r\n\r\n")
    for name, filename, size, digest in report:
        out.write("name={} filename={} size={} sha256={}\n".format(name, filename, size, digest).encode())
else:
    rows = "".join(
        "<tr><td class=\"name\">{}</td><td class=\"name\">{}</td><td class=\"num\">{:,}</td><td><code class=\"sha256\">{}</code></td></tr>\n".format(
            html.escape(name), html.escape(filename), size, digest)
        for name, filename, size, digest in report
    )
    out.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n")
    out.write((HEAD.format(title="Uploaded") + """<p class="lede">{} bytes of request body
arrived on standard input (<code>CONTENT_LENGTH</code>), in {} part(s):</p>
<div class="table-wrap"><table id="parts">
<thead><tr><th>field</th><th>file name</th><th class="num">bytes</th><th>SHA-256</th></tr></thead>
<tbody>
""".format(len(body), len(report)) + rows + """</tbody></table></div>
<h2>Another one</h2>
""" + FORM + "</main></body></html>\n").encode("utf-8"))
