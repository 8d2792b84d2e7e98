#!/usr/bin/env bash
# gatehouse vs nginx, lighttpd, Apache (event MPM) and Caddy, side by side.
# One command; see bench/README.md. Loopback only, bounded in time.
#
#   bash bench/run.sh                                  # the full protocol (~1.5 h)
#   DURATION=3 RUNS=1 LABEL=smoke bash bench/run.sh    # a quick smoke run
#
# Environment (defaults in brackets): RUNS [3], DURATION [10] seconds,
# WARMUP [1], CONNECTIONS [10,100,1000], CASES [all], SERVERS [all],
# SERVER_CPUS [0], CLIENT_CPUS [1], WORKERS [8], BASE_PORT [18080],
# LIMITS [1], STREAM [1], STREAM_BYTES [1073741824], LABEL, NOTE,
# GATEHOUSE_BIN (skip the cargo build), NO_INSTALL=1, KEEP_WORKDIR=1.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. The peers and tools, from Debian's packages when missing.
if [ "${NO_INSTALL:-0}" != 1 ]; then
  need=()
  [ -x /usr/sbin/nginx ] || need+=(nginx)
  [ -x /usr/sbin/lighttpd ] || need+=(lighttpd)
  [ -x /usr/sbin/apache2 ] || need+=(apache2)
  [ -x /usr/sbin/fcgiwrap ] || need+=(fcgiwrap)
  ls /usr/sbin/php-fpm* >/dev/null 2>&1 || need+=(php-fpm)
  command -v wrk >/dev/null || need+=(wrk)
  command -v curl >/dev/null || need+=(curl)
  command -v gcc >/dev/null || need+=(gcc libc6-dev)
  command -v taskset >/dev/null || need+=(util-linux)
  if [ ! -x /usr/bin/caddy ]; then
    if apt-cache policy caddy 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      need+=(caddy)
    else
      echo "caddy: no Debian package available here; Caddy is skipped" >&2
    fi
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    apt-get update -qq
    # policy-rc.d (containers) or not: the packages' own services are not used
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  python3 -c 'import flup' 2>/dev/null || pip install -q flup
fi

# 2. gatehouse, built once (incremental when nothing changed).
if [ -z "${GATEHOUSE_BIN:-}" ]; then
  cargo build --release --quiet
fi
# hyper alone, the floor of the static 1 KB case (bench/tools/hyper_floor.rs).
cargo build --release --quiet --example hyper_floor

# 3. The run: a work directory for fixtures, configurations, sockets and logs.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
W=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
chmod 755 "$W"
pid=""
wait_gone() { for _ in $(seq "$1"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # Ctrl-C reached bench.py too: let it stop its servers and write what it
    # has; otherwise (SIGTERM to this script) tell it, then insist.
    [ "${1:-}" = INT ] && wait_gone 300
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone 300 || kill -KILL "$pid" 2>/dev/null || true
  fi
  # Whatever is still alive in a session the harness started, or names $W.
  if [ -f "$W/sessions" ]; then
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      [ "$p" = $$ ] && continue
      sid=$(awk '{sub(/.*\) /, ""); print $4}' "/proc/$p/stat" 2>/dev/null) || continue
      if grep -qx "$sid" "$W/sessions" 2>/dev/null || tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$W"; then
        kill -KILL "$p" 2>/dev/null || true
      fi
    done
  fi
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then echo "work directory kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'cleanup INT; exit 130' INT
trap 'cleanup TERM; exit 143' TERM
export BENCH_WORKDIR=$W
taskset -c "${CLIENT_CPUS:-1}" python3 bench/bench.py &
pid=$!
rc=0
wait "$pid" || rc=$?
exit "$rc"
