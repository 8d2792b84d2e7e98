#!/usr/bin/env python3
"""A non-parsed-header program (RFC 3875 section 5): it writes the status
line itself, and its output goes to the client as written."""
import os
import sys

protocol = os.environ.get("SERVER_PROTOCOL", "HTTP/1.1")
if protocol not in ("HTTP/1.0", "HTTP/1.1"):
    protocol = "HTTP/1.1"
out = sys.stdout.buffer
out.write("{} 200 OK\r\nContent-Type: text/plain\r\nX-NPH: yes\r\n\r\n".format(protocol).encode())
out.write(b"Hello from an NPH script\n")
