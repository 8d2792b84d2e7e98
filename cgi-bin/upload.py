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


if os.environ.get("REQUEST_METHOD") != "POST":
    out.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n")
    out.write(b"""<!DOCTYPE html>
<title>Upload</title>
<h1>Upload a file</h1>
<form method="post" enctype="multipart/form-data">
<p><input type="file" name="file"> <input name="note" placeholder="note">
<p><button>Upload</button>
</form>
""")
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
        "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n".format(
            html.escape(name), html.escape(filename), size, digest)
        for name, filename, size, digest in report
    )
    out.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n")
    out.write(("<!DOCTYPE html>\n<title>Uploaded</title>\n<h1>Uploaded</h1>\n<table>\n"
               "<tr><th>field</th><th>file</th><th>bytes</th><th>sha256</th></tr>\n"
               + rows + "</table>\n").encode("utf-8"))
