#!/usr/bin/env python3
"""The request body back, byte for byte (application/octet-stream), with
the CONTENT_LENGTH the server gave in an X-Content-Length header."""
import os
import shutil
import sys

length = os.environ.get("CONTENT_LENGTH", "")
out = sys.stdout.buffer
out.write("Content-Type: application/octet-stream\r\nX-Content-Length: {}\r\n\r\n".format(length or "none").encode())
out.flush()
remaining = int(length or 0)
while remaining > 0:
    chunk = sys.stdin.buffer.read1(min(remaining, 65536))
    if not chunk:
        break
    out.write(chunk)
    remaining -= len(chunk)
out.flush()
