#!/bin/sh
# A CGI program in plain POSIX shell.
printf 'Content-Type: text/plain\r\n\r\n'
printf 'Hello from sh: %s %s\n' "$REQUEST_METHOD" "$SCRIPT_NAME"
