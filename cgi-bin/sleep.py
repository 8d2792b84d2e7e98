#!/usr/bin/env python3
"""Sleeps ?s=SECONDS (default 30) before answering: for timeout and
disconnect tests. It logs its pid on stderr first; with ?pidfile=NAME and
CGI_SCRATCH_DIR set (tests), it also writes the pid to that file there.
?early=1 sends its headers (and a first line) before sleeping."""
import os
import sys
import time
from urllib.parse import parse_qs

query = parse_qs(os.environ.get("QUERY_STRING", ""))
seconds = max(0.0, min(float(query.get("s", ["30"])[0]), 3600.0))

sys.stderr.write("sleep.py: pid {} sleeping {}s\n".format(os.getpid(), seconds))
sys.stderr.flush()
scratch = os.environ.get("CGI_SCRATCH_DIR")
pidfile = os.path.basename(query.get("pidfile", [""])[0])
if scratch and pidfile:
    path = os.path.join(scratch, pidfile)
    with open(path + ".tmp", "w") as f:
        f.write("{}\n".format(os.getpid()))
    os.rename(path + ".tmp", path)

out = sys.stdout.buffer
if query.get("early", [""])[0]:
    out.write(b"Content-Type: text/plain\r\n\r\nsleeping\n")
    out.flush()
time.sleep(seconds)
if not query.get("early", [""])[0]:
    out.write(b"Content-Type: text/plain\r\n\r\n")
out.write("slept {}s\n".format(seconds).encode())
