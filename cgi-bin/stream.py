#!/usr/bin/env python3
"""A progress page written a line at a time: each line is flushed, then the
script sleeps. ?n=STEPS (default 5) and ?delay=SECONDS (default 0.5).
With ?marker=NAME and CGI_SCRATCH_DIR set (tests), it creates that file in
CGI_SCRATCH_DIR once it has finished."""
import os
import sys
import time
from urllib.parse import parse_qs

query = parse_qs(os.environ.get("QUERY_STRING", ""))
steps = max(1, min(int(query.get("n", ["5"])[0]), 100))
delay = max(0.0, min(float(query.get("delay", ["0.5"])[0]), 10.0))

out = sys.stdout.buffer
out.write(b"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n\r\n")
out.flush()
for step in range(1, steps + 1):
    out.write("step {} of {} ({}%)\n".format(step, steps, step * 100 // steps).encode())
    out.flush()
    time.sleep(delay)
out.write(b"done\n")
out.flush()

scratch = os.environ.get("CGI_SCRATCH_DIR")
marker = os.path.basename(query.get("marker", [""])[0])
if scratch and marker:
    with open(os.path.join(scratch, marker), "w") as f:
        f.write("finished\n")
