#!/usr/bin/env python3
"""The smallest CGI program: a header block, a blank line, a body."""
import sys

out = sys.stdout.buffer
out.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n")
out.write(b"<!DOCTYPE html>\n<title>Hello</title>\n<h1>Hello from a Python CGI script</h1>\n")
