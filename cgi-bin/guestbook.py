#!/usr/bin/env python3
"""A guestbook, the classic CGI program: GET shows the entries and a form,
POST appends an entry and redirects back (303, so a reload does not post
twice). ?format=json lists the entries as JSON.

Every request is a separate process, so concurrent posts are separate
processes appending to one file. Each entry is one JSON line written with a
single write() while holding an exclusive flock() on the data file, then
fsync()ed; readers take a shared lock, so none sees half an entry and no
entry is lost (tests post 50 at once and count 50).

The data file is $GUESTBOOK_DIR/guestbook.jsonl (the route's `env:` in
conf/gatehouse.yaml); a relative directory is taken from this script's
directory, and the default is ../var, outside the document root. It is
created when missing."""
import fcntl
import html
import json
import os
import sys
import time
from urllib.parse import parse_qs, parse_qsl

MAX_NAME = 80
MAX_MESSAGE = 2000
SHOWN = 100


def data_file():
    here = os.path.dirname(os.path.abspath(__file__))
    directory = os.path.join(here, os.environ.get("GUESTBOOK_DIR") or "../var")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, "guestbook.jsonl")


def append(entry):
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(data_file(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = os.write(fd, line)
        if written != len(line):
            raise OSError("short write to the guestbook ({} of {} bytes)".format(written, len(line)))
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def entries():
    try:
        with open(data_file(), "rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # never written by us; skip rather than fail the page
    return out


def respond(status, content_type, body, extra=""):
    head = "Status: {}\r\nContent-Type: {}\r\nCache-Control: no-store\r\n{}\r\n".format(
        status, content_type, extra)
    sys.stdout.buffer.write(head.encode() + body)


def post():
    if os.environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        respond("415 Unsupported Media Type", "text/plain", b"send application/x-www-form-urlencoded\n")
        return
    length = int(os.environ.get("CONTENT_LENGTH") or 0)
    if length > 64 * 1024:
        respond("413 Content Too Large", "text/plain", b"an entry is at most a few KiB\n")
        return
    fields = dict(parse_qsl(sys.stdin.buffer.read(length).decode("utf-8", "replace"), keep_blank_values=True))
    name = " ".join(fields.get("name", "").split())[:MAX_NAME] or "anonymous"
    message = fields.get("message", "").strip()[:MAX_MESSAGE]
    if not message:
        page(error="Write a message first.")
        return
    entry = {"time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "name": name,
             "message": message, "pid": os.getpid()}
    append(entry)
    # Post/Redirect/Get: the browser asks for the list with a GET.
    respond("303 See Other", "text/plain", b"saved\n",
            "Location: {}\r\n".format(os.environ.get("SCRIPT_NAME", "/cgi-bin/guestbook.py")))


def page(error=""):
    all_entries = entries()
    items = "".join(
        '<li class="entry"><p class="meta"><strong>{}</strong> <span>{}</span> '
        '<span class="pid">written by pid {}</span></p><p class="message">{}</p></li>\n'.format(
            html.escape(e.get("name", "")), html.escape(e.get("time", "")), int(e.get("pid", 0)),
            html.escape(e.get("message", "")).replace("\n", "<br>"))
        for e in reversed(all_entries[-SHOWN:])
    ) or '<li class="empty">No entries yet. Be the first.</li>\n'
    body = TEMPLATE.format(
        action=html.escape(os.environ.get("SCRIPT_NAME", "")),
        error='<p class="error">{}</p>'.format(html.escape(error)) if error else "",
        count=len(all_entries), plural="y" if len(all_entries) == 1 else "ies",
        items=items, max_name=MAX_NAME, max_message=MAX_MESSAGE)
    respond("422 Unprocessable Content" if error else "200 OK", "text/html; charset=utf-8", body.encode("utf-8"))


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Guestbook · gatehouse</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><a href="/">gatehouse</a><span>CGI demo</span></header><main>
<h1>Guestbook</h1>
<p class="lede">Each post starts a new Python process that appends one line to a file,
holding an <code>flock</code> on it while it writes. Many processes, one file, no lost entries.</p>
<form method="post" action="{action}" class="card">
<label>Name <input name="name" maxlength="{max_name}" autocomplete="name"></label>
<label>Message <textarea name="message" rows="3" maxlength="{max_message}" required></textarea></label>
{error}<button>Sign the guestbook</button>
</form>
<h2><span id="count">{count}</span> entr{plural}</h2>
<ol class="entries">
{items}</ol>
</main></body></html>
"""


def main():
    method = os.environ.get("REQUEST_METHOD", "GET")
    if method == "POST":
        post()
    elif parse_qs(os.environ.get("QUERY_STRING", "")).get("format", [""])[0] == "json":
        respond("200 OK", "application/json", json.dumps(entries(), ensure_ascii=False).encode("utf-8"))
    elif method in ("GET", "HEAD"):
        page()
    else:
        respond("405 Method Not Allowed", "text/plain", b"GET or POST\n", "Allow: GET, HEAD, POST\r\n")


if __name__ == "__main__":
    main()
