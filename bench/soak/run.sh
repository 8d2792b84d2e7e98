#!/usr/bin/env bash
# Soak test: a mixed load (static files, CGI, a managed flup FastCGI backend,
# clients hanging up mid-response) against a release build of gatehouse on
# loopback, sampling the server's RSS, descriptors and processes as it goes.
# Bounded: it stops by itself after WARMUP + DURATION seconds (plus settling).
#
#   bash bench/soak/run.sh            # 10 minutes (DURATION=600)
#   bash bench/soak/run.sh --short    # 30-second smoke run
#   DURATION=120 CONCURRENCY=128 bash bench/soak/run.sh
#
# Needs `cargo build --release` at the top (done here when the binary is
# missing) and flup (pip install flup). Exit status 1 when a rule fails;
# the samples land in bench/soak/results/ (not tracked).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-600}
WARMUP=${WARMUP:-30}
if [ "${1:-}" = "--short" ]; then DURATION=30; WARMUP=10; fi
CONCURRENCY=${CONCURRENCY:-256}
INTERVAL=${INTERVAL:-10}
[ "${1:-}" = "--short" ] && INTERVAL=5

[ -x target/release/gatehouse ] || cargo build --release
(cd bench/soak && cargo build --release --quiet)
python3 -c 'import flup' 2>/dev/null || pip install --quiet flup

work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/htdocs" "$work/cgi-bin" "$work/apps"
head -c 1024 /dev/urandom >"$work/htdocs/small.txt"
head -c 102400 /dev/urandom >"$work/htdocs/medium.bin"
head -c 8388608 /dev/urandom >"$work/htdocs/large.bin"
cat >"$work/cgi-bin/hello.sh" <<'SH'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nhello from CGI\n'
SH
cat >"$work/cgi-bin/stream.sh" <<'SH'
#!/bin/sh
printf 'Content-Type: application/octet-stream\r\n\r\n'
exec head -c 4194304 /dev/zero
SH
chmod +x "$work/cgi-bin/"*.sh
cp apps/hello_wsgi.py "$work/apps/"
cat >"$work/gatehouse.yaml" <<YAML
listen: ["127.0.0.1:0"]
document_root: htdocs
access_log: "off"
error_log: error.log
log_level: warn
cgi:
  - prefix: /cgi-bin/
    dir: cgi-bin
    timeout: 60s
    max_processes: $((CONCURRENCY + 16))
    pass_env: [PATH]
fastcgi:
  - prefix: /wsgi/
    spawn:
      command: [python3, apps/hello_wsgi.py]
      processes: 2
    max_conns: 64
    keepalive: 8
YAML

target/release/gatehouse --config "$work/gatehouse.yaml" 2>"$work/stderr" &
server=$!
for _ in $(seq 100); do
    addr=$(sed -n 's|^gatehouse listening on http://||p' "$work/stderr" | head -1)
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$work/stderr"; exit 1; }
echo "gatehouse $server on $addr: warm-up ${WARMUP}s, run ${DURATION}s, $CONCURRENCY connections"

mkdir -p bench/soak/results
stamp=$(date -u +%Y%m%d-%H%M%S)
status=0
nice -n 10 bench/soak/target/release/soak-client --addr "$addr" --pid "$server" \
    --duration "$DURATION" --warmup "$WARMUP" --concurrency "$CONCURRENCY" \
    --interval "$INTERVAL" --out "bench/soak/results/$stamp.tsv" \
    | tee "bench/soak/results/$stamp.txt" || status=$?
echo "error log lines (warn and above): $(wc -l <"$work/error.log")"
grep -v 'killing its process group\|CGI stderr' "$work/error.log" | tail -5 || true
exit "$status"
