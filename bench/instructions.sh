#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: a
# figure that does not move with the machine's load, for comparing two builds
# where req/s on this VM varies by 10 % from run to run.
#
#   bash bench/instructions.sh                      # cached 1 KB file, target/release/gatehouse
#   GATEHOUSE_BIN=/tmp/old bash bench/instructions.sh
#   CONFIG=my.yaml URL_PATH=/hello.php bash bench/instructions.sh
#   SERVER_PREFIX="taskset -c 0" bash bench/instructions.sh   # one CPU: the
#       current-thread runtime, as in bench/run.sh (default: the thread pool)
#
# gatehouse runs under callgrind twice, loaded by wrk (1 thread, 20
# connections) for 2 s and then 6 s; the difference in instructions over the
# difference in requests leaves out start-up and shutdown. Kernel time is not
# counted: this measures our code and the crates', not the system calls.
# The last profile stays in the work directory for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${GATEHOUSE_BIN:-target/release/gatehouse}
url_path=${URL_PATH:-/1k.bin}
port=${PORT:-18590}
for tool in valgrind wrk curl; do
  command -v "$tool" >/dev/null || { echo "instructions.sh: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
[ -x "$bin" ] || cargo build --release
work=$(mktemp -d /tmp/gatehouse-instructions.XXXXXX)
config=${CONFIG:-}
if [ -z "$config" ]; then
  mkdir "$work/htdocs"
  head -c 1024 /dev/urandom >"$work/htdocs/1k.bin"
  config=$work/gatehouse.yaml
  cat >"$config" <<EOF
listen: ["127.0.0.1:$port"]
document_root: $work/htdocs
access_log: "off"
log_level: warn
EOF
fi
listen=$(sed -n 's/^listen: *\["\([^"]*\)"\].*/\1/p' "$config")
listen=${listen:-127.0.0.1:$port}

server=
stop() { [ -n "$server" ] && kill -INT "$server" 2>/dev/null && wait "$server" 2>/dev/null; server=; }
trap 'stop; echo "profiles in $work"' EXIT

# One measurement: "<requests> <instructions>".
measure() {
  rm -f "$work"/callgrind.out.*
  ${SERVER_PREFIX:-} valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out.%p" \
    "$bin" --config "$config" >/dev/null 2>"$work/stderr" </dev/null &
  server=$!
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://$listen/" && break
    sleep 0.2
  done
  local requests
  requests=$(wrk -t1 -c20 -d"$1"s "http://$listen$url_path" | awk '/requests in/ {print $1}')
  stop
  echo "$requests $(awk '/^(summary|totals):/ {print $2; exit}' "$work"/callgrind.out.*)"
}

read -r short_requests short_total < <(measure 2)
read -r long_requests long_total < <(measure 6)
echo "$url_path: $(( (long_total - short_total) / (long_requests - short_requests) )) instructions per request" \
  "($short_requests and $long_requests requests)"
