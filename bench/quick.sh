#!/usr/bin/env bash
# Quick throughput check of gatehouse alone (the full side-by-side benchmark
# against nginx, lighttpd, Apache and Caddy is bench/run.sh once it exists).
# Loopback only, bounded: each case runs DURATION seconds.
#   bash bench/quick.sh            # static 1 KB / 100 KB / 10 MB, hello CGI
# The server runs on CPU 0 and wrk on CPU 1 (taskset), the same for every case.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-100}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/htdocs" "$work/cgi-bin"
head -c 1024 /dev/urandom >"$work/htdocs/1k.bin"
head -c 102400 /dev/urandom >"$work/htdocs/100k.bin"
head -c 10485760 /dev/urandom >"$work/htdocs/10m.bin"
cp cgi-bin/hello.sh "$work/cgi-bin/" 2>/dev/null || printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\nhello\\n"\n' >"$work/cgi-bin/hello.sh"
chmod +x "$work/cgi-bin/hello.sh"
cat >"$work/gatehouse.yaml" <<YAML
listen: ["127.0.0.1:0"]
document_root: htdocs
access_log: "off"
error_log: "-"
log_level: warn
cgi:
  - prefix: /cgi-bin/
    dir: cgi-bin
YAML
taskset -c 0 target/release/gatehouse --config "$work/gatehouse.yaml" 2>"$work/stderr" &
for _ in $(seq 100); do grep -q "listening on" "$work/stderr" && break; sleep 0.1; done
url=$(sed -n 's/^gatehouse listening on //p' "$work/stderr" | head -1)
printf '| case | connections | req/s | p50 | p99 |\n|---|---|---|---|---|\n'
for path in /1k.bin /100k.bin /10m.bin /cgi-bin/hello.sh; do
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url$path")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '| %s | %s | %s | %s | %s |\n' "$path" "$CONNS" "$rps" "$p50" "$p99"
done
