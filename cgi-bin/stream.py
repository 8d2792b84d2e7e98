#!/usr/bin/env python3
"""A progress page written a line at a time: each line is flushed, then the
script sleeps. ?n=STEPS (default 5) and ?delay=SECONDS (default 0.5);
?format=html makes it an HTML page that a browser shows as it arrives.
With CGI_SCRATCH_DIR set (tests): ?marker=NAME creates that file there once
the program has finished, and ?wait=NAME makes it wait, after its first
line, until a file NAME exists there (at most 30 s), so a test can look at
the page while the program is provably still running."""
import html
import os
import sys
import time
from urllib.parse import parse_qs

query = parse_qs(os.environ.get("QUERY_STRING", ""))
steps = max(1, min(int(query.get("n", ["5"])[0]), 100))
delay = max(0.0, min(float(query.get("delay", ["0.5"])[0]), 10.0))
as_html = query.get("format", [""])[0] == "html"
scratch = os.environ.get("CGI_SCRATCH_DIR")


def scratch_file(param):
    name = os.path.basename(query.get(param, [""])[0])
    return os.path.join(scratch, name) if scratch and name else None


def wait_for(path):
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


out = sys.stdout.buffer
started = time.monotonic()
if as_html:
    out.write(b"Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\r\n")
    out.write("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Streaming · gatehouse</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><a href="/">gatehouse</a><span>CGI demo</span></header><main>
<h1>Streaming output</h1>
<p class="lede">This program prints a line, flushes, and sleeps {delay}s, {steps} times.
gatehouse sends each flushed piece on at once (chunked transfer encoding), so the lines
appear while the program is still running; the times are the program's own clock.</p>
<ol class="stream" id="lines">
""".format(delay=html.escape(str(delay)), steps=steps).encode("utf-8"))
else:
    out.write(b"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n\r\n")
out.flush()

hold = scratch_file("wait")
for step in range(1, steps + 1):
    line = "step {} of {} ({}%)".format(step, steps, step * 100 // steps)
    if as_html:
        out.write('<li id="step-{}"><span>{}</span><span class="meter"><span style="width:{}%"></span>'
                  '</span><span class="t">{:.2f}s</span></li>\n'.format(
                      step, line, step * 100 // steps, time.monotonic() - started).encode())
    else:
        out.write((line + "\n").encode())
    out.flush()
    if step == 1 and hold:
        wait_for(hold)
    time.sleep(delay)
if as_html:
    out.write('</ol>\n<p class="done" id="done">done after {:.2f}s</p>\n'
              '<p><a href="">Run it again</a> · <a href="/">Back to the demo</a></p>\n'
              '</main></body></html>\n'.format(time.monotonic() - started).encode())
else:
    out.write(b"done\n")
out.flush()

marker = scratch_file("marker")
if marker:
    with open(marker, "w") as f:
        f.write("finished\n")
