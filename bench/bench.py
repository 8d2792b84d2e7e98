#!/usr/bin/env python3
"""gatehouse side-by-side benchmark: gatehouse, nginx, lighttpd, Apache, Caddy.

Started by bench/run.sh (which installs the peers, builds gatehouse and
creates the work directory); see bench/README.md for the protocol. Everything
this script starts runs in its own session and is stopped at the end, also on
an error, Ctrl-C or SIGTERM.
"""

import datetime
import glob
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
PAGE = os.sysconf("SC_PAGE_SIZE")


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


def env_list(name, default):
    return [x.strip() for x in os.environ.get(name, default).replace(" ", ",").split(",") if x.strip()]


ALL_SERVERS = ["gatehouse", "nginx", "lighttpd", "apache", "caddy"]
# name, path, marker the body must contain (None: length must equal size), size
ALL_CASES = [
    ("static-1k", "/1k.bin", None, 1024),
    ("static-100k", "/100k.bin", None, 100 * 1024),
    ("static-10m", "/10m.bin", None, 10 * 1024 * 1024),
    ("cgi-c", "/cgi-bin/hello", "hello from C", None),
    ("cgi-sh", "/cgi-bin/hello.sh", "hello from sh", None),
    ("cgi-py", "/cgi-bin/hello.py", "hello from Python", None),
    ("php", "/hello.php", "hello from PHP", None),
    ("flup", "/flup/hello", "hello from flup", None),
]

CFG = {
    "runs": env_int("RUNS", 3),
    "duration": env_float("DURATION", 10),
    "warmup": env_float("WARMUP", 1),
    "connections": [int(c) for c in env_list("CONNECTIONS", "10,100,1000")],
    "cases": env_list("CASES", ",".join(c[0] for c in ALL_CASES)),
    "servers": env_list("SERVERS", ",".join(ALL_SERVERS)),
    "server_cpus": os.environ.get("SERVER_CPUS", "0"),
    "client_cpus": os.environ.get("CLIENT_CPUS", "1"),
    "workers": env_int("WORKERS", 8),
    "base_port": env_int("BASE_PORT", 18080),
    "wrk_threads": env_int("WRK_THREADS", 1),
    "wrk_timeout": os.environ.get("WRK_TIMEOUT", "10s"),
    "limits": os.environ.get("LIMITS", "1") != "0",
    "stream": os.environ.get("STREAM", "1") != "0",
    "stream_bytes": env_int("STREAM_BYTES", 1 << 30),
    "sample_interval": env_float("SAMPLE_INTERVAL", 0.2),
    "label": os.environ.get("LABEL", ""),
    "note": os.environ.get("NOTE", ""),
    "pause": env_float("PAUSE", 1),
    "settle_max": env_float("SETTLE_MAX", 60),
    "mem_guard": env_int("MEM_GUARD_MIB", 3072) * 2**20,
}
for c in CFG["cases"]:
    if c not in [x[0] for x in ALL_CASES]:
        sys.exit(f"unknown case {c!r}; cases: {', '.join(x[0] for x in ALL_CASES)}")
for s in CFG["servers"]:
    if s not in ALL_SERVERS:
        sys.exit(f"unknown server {s!r}; servers: {', '.join(ALL_SERVERS)}")

W = os.environ.get("BENCH_WORKDIR") or sys.exit("BENCH_WORKDIR is not set: start the benchmark with bench/run.sh")
GATEHOUSE_BIN = os.path.realpath(os.environ.get("GATEHOUSE_BIN", os.path.join(REPO, "target/release/gatehouse")))
SYS_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
FLUP_PYTHON = os.environ.get("FLUP_PYTHON", sys.executable)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# processes: every one in its own session, remembered for the cleanup


class Stopping(BaseException):
    pass


STARTED = []  # Popen objects, in start order


def record_session(pid):
    with open(os.path.join(W, "sessions"), "a") as f:
        f.write(f"{pid}\n")


def cpu_count(cpus):
    """How many CPUs a taskset list such as "0", "0,1" or "0-3" names: nginx
    gets one worker per server CPU (`auto` as nginx users run it)."""
    n = 0
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def start(cmd, name, cpus=None, env=None, cwd=None):
    """Start cmd in a new session (pinned to cpus), output to W/logs/NAME.log."""
    if cpus is not None:
        cmd = ["taskset", "-c", cpus] + cmd
    logf = open(os.path.join(W, "logs", f"{name}.log"), "ab")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                         start_new_session=True, env=env, cwd=cwd)
    logf.close()
    p.bench_name = name
    STARTED.append(p)
    record_session(p.pid)
    return p


def proc_stat(pid):
    """(ppid, pgrp, session) of pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[2]), int(fields[3])


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def session_pids(sid):
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[2] == sid:
            out.append(pid)
    return out


def descendants(root):
    children = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            children.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def kill_quietly(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(p, grace=10.0):
    """SIGTERM to p's process group, wait, then SIGKILL everything in its
    session and below it."""
    if p.poll() is None:
        tree = descendants(p.pid)
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log(f"{p.bench_name} did not stop in {grace}s: SIGKILL")
        rest = set(session_pids(p.pid)) | {q for q in tree if os.path.exists(f"/proc/{q}")}
        for q in rest:
            kill_quietly(q, signal.SIGKILL)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    else:
        for q in session_pids(p.pid):
            kill_quietly(q, signal.SIGKILL)
    if p in STARTED:
        STARTED.remove(p)


def sweep():
    """Last resort: every process whose command line names the work directory
    or that lives in a session we started."""
    me = {os.getpid(), os.getppid()}
    sessions = set()
    try:
        with open(os.path.join(W, "sessions")) as f:
            sessions = {int(x) for x in f.read().split()}
    except OSError:
        pass
    for pid in all_pids():
        if pid in me:
            continue
        st = proc_stat(pid)
        hit = st is not None and st[2] in sessions
        if not hit:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    hit = W.encode() in f.read()
            except OSError:
                pass
        if hit:
            kill_quietly(pid, signal.SIGKILL)


def cleanup():
    for p in reversed(list(STARTED)):
        try:
            stop(p, grace=5)
        except Exception as e:  # keep going: everything must stop
            log(f"stopping {p.bench_name}: {e}")
    sweep()


def wait_port(port, p, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if p.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_path(path, p, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return True
        if p.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# memory: one sampler thread, groups of processes by session and executable


class Sampler(threading.Thread):
    """Every interval: for each group (session id + executables), the sum of
    VmRSS over its processes that were also there at the previous sample (so
    a fork between fork() and exec() is not counted twice), the running peak
    per tag, and the highest VmHWM seen per process."""

    def __init__(self, interval):
        super().__init__(daemon=True)
        self.interval = interval
        self.lock = threading.Lock()
        self.groups = {}
        self.halt = threading.Event()

    def add(self, name, sid, exes):
        with self.lock:
            self.groups[name] = {"sid": sid, "exes": set(exes), "prev": set(), "tag": "start",
                                 "peaks": {}, "pss_peaks": {}, "threads": {}, "hwm": {}, "last": 0,
                                 "last_pss": 0, "pids": set(), "others": 0}

    def remove(self, name):
        with self.lock:
            return self.groups.pop(name, None)

    def tag(self, name, tag):
        with self.lock:
            if name in self.groups:
                self.groups[name]["tag"] = tag

    def peaks(self, name, kind="peaks"):
        with self.lock:
            g = self.groups.get(name)
            return dict(g[kind]) if g else {}

    def others(self, name):
        """Processes of the group's session that are not its executables
        (CGI children still running), at the last scan."""
        with self.lock:
            g = self.groups.get(name)
            return g["others"] if g else 0

    def reset(self, name, tag):
        with self.lock:
            g = self.groups.get(name)
            if g:
                g["peaks"].pop(tag, None)
                g["pss_peaks"].pop(tag, None)
                g["tag"] = tag

    def measure(self, name):
        """Sample now (two scans) and return (RSS sum, PSS sum) in bytes."""
        self.scan()
        time.sleep(0.05)
        self.scan()
        with self.lock:
            return self.groups[name]["last"], self.groups[name]["last_pss"]

    def hwm_sum(self, name):
        with self.lock:
            g = self.groups.get(name)
            return sum(g["hwm"].values()) if g else 0

    def scan(self):
        with self.lock:
            wanted = {g["sid"]: n for n, g in self.groups.items()}
            if not wanted:
                return
        found = {n: {} for n in wanted.values()}
        for pid in all_pids():
            st = proc_stat(pid)
            if not st or st[2] not in wanted:
                continue
            name = wanted[st[2]]
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
                with open(f"/proc/{pid}/status") as f:
                    status = f.read()
            except OSError:
                continue
            rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            thr = re.search(r"^Threads:\s+(\d+)", status, re.M)
            if rss:
                found[name][pid] = [exe, int(rss.group(1)) * 1024, int(hwm.group(1)) * 1024 if hwm else 0,
                                    int(thr.group(1)) if thr else 0, 0]
        with self.lock:
            for name, procs in found.items():
                g = self.groups.get(name)
                if g is None:
                    continue
                mine = {pid: v for pid, v in procs.items() if not g["exes"] or v[0] in g["exes"]}
                g["others"] = len(procs) - len(mine)
                counted = [pid for pid in mine if pid in g["prev"]]
                g["prev"] = set(mine)
                total = sum(mine[pid][1] for pid in counted)
                g["last"] = total
                g["pids"] = set(counted)
                tag = g["tag"]
                g["peaks"][tag] = max(g["peaks"].get(tag, 0), total)
                g["threads"][tag] = max(g["threads"].get(tag, 0), sum(mine[pid][3] for pid in counted))
                for pid in counted:
                    g["hwm"][pid] = max(g["hwm"].get(pid, 0), mine[pid][2])
                g["todo_pss"] = counted
        # PSS (shared pages divided among their users) outside the lock
        for name in found:
            with self.lock:
                g = self.groups.get(name)
                pids = list(g.get("todo_pss", [])) if g else []
            pss = 0
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/smaps_rollup") as f:
                        m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
                        pss += int(m.group(1)) * 1024 if m else 0
                except OSError:
                    pass
            with self.lock:
                g = self.groups.get(name)
                if g:
                    g["last_pss"] = pss
                    g["pss_peaks"][g["tag"]] = max(g["pss_peaks"].get(g["tag"], 0), pss)
        try:
            with open("/proc/meminfo") as f:
                m = re.search(r"^MemAvailable:\s+(\d+) kB", f.read(), re.M)
            avail = int(m.group(1)) * 1024
            self.mem_min = min(getattr(self, "mem_min", avail), avail)
            self.low_memory = avail < CFG["mem_guard"]
        except (OSError, AttributeError):
            pass

    low_memory = False

    def run(self):
        while not self.halt.wait(self.interval):
            try:
                self.scan()
            except Exception as e:  # never let sampling kill the run
                log(f"sampler: {e}")


SAMPLER = Sampler(CFG["sample_interval"])

# --------------------------------------------------------------------------
# fixtures


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build_fixtures():
    for d in ["htdocs", "cgi-bin", "run", "logs", "tmp", "conf", "bin", "home", "apache", "nginx"]:
        os.makedirs(os.path.join(W, d), exist_ok=True)
    os.chmod(W, 0o755)
    for name in ["hello", "count", "spawnloop", "fcgiload"]:
        src = os.path.join(BENCH, "tools", f"{name}.c")
        dst = os.path.join(W, "cgi-bin" if name in ("hello", "count") else "bin", name)
        sh(["gcc", "-O2", "-o", dst, src])
    with open(os.path.join(W, "cgi-bin", "hello.sh"), "w") as f:
        f.write("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello from sh\\n'\n")
    with open(os.path.join(W, "cgi-bin", "hello.py"), "w") as f:
        f.write(f"#!{SYS_PYTHON}\nimport sys\n"
                "sys.stdout.write('Content-Type: text/plain\\r\\n\\r\\nhello from Python\\n')\n")
    for n in os.listdir(os.path.join(W, "cgi-bin")):
        os.chmod(os.path.join(W, "cgi-bin", n), 0o755)
    for name, size in [("1k.bin", 1024), ("100k.bin", 100 * 1024), ("10m.bin", 10 * 1024 * 1024)]:
        with open(os.path.join(W, "htdocs", name), "wb") as f:
            f.write(os.urandom(size))
    # the 1 GB transfers: sparse files (no disk, the same bytes for everyone)
    for path in [os.path.join(W, "htdocs", "1g.bin"), os.path.join(W, "tmp", "upload.bin")]:
        with open(path, "wb") as f:
            f.truncate(CFG["stream_bytes"])
    with open(os.path.join(W, "htdocs", "index.html"), "w") as f:
        f.write("<!doctype html><title>bench</title><p>bench\n")
    with open(os.path.join(W, "htdocs", "hello.php"), "w") as f:
        f.write('<?php\nheader("Content-Type: text/plain");\necho "hello from PHP\\n";\n')
    with open(os.path.join(W, "htdocs", "upload.php"), "w") as f:
        f.write('<?php\n$in = fopen("php://input", "rb");\n$n = 0;\n'
                'while (!feof($in)) { $n += strlen(fread($in, 65536)); }\n'
                'header("Content-Type: text/plain");\necho $n, "\\n";\n')
    for root, dirs, files in os.walk(W):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            p = os.path.join(root, f)
            os.chmod(p, os.stat(p).st_mode | 0o444)
    os.chmod(os.path.join(W, "tmp"), 0o1777)


# --------------------------------------------------------------------------
# the shared backends: php-fpm, flup, fcgiwrap

PHP_SOCK = os.path.join(W, "run", "php.sock")
FLUP_SOCK = os.path.join(W, "run", "flup.sock")
FCGIWRAP_SOCK = os.path.join(W, "run", "fcgiwrap.sock")


def php_fpm_bin():
    c = sorted(glob.glob("/usr/sbin/php-fpm*"))
    return c[-1] if c else None


def php_ini():
    c = sorted(glob.glob("/etc/php/*/fpm/php.ini"))
    return c[-1] if c else None


BACKENDS = {}


def start_backends():
    n = CFG["workers"]
    fpm = php_fpm_bin()
    if fpm:
        conf = os.path.join(W, "conf", "php-fpm.conf")
        with open(conf, "w") as f:
            f.write(f"""[global]
pid = {W}/run/php-fpm.pid
error_log = {W}/logs/php-fpm-error.log
daemonize = no
[bench]
user = root
group = root
listen = {PHP_SOCK}
listen.mode = 0666
listen.backlog = 4096
pm = static
pm.max_children = {n}
pm.max_requests = 0
php_admin_value[post_max_size] = 0
php_admin_flag[enable_post_data_reading] = off
""")
        cmd = [fpm, "-R", "-F", "-y", conf]
        if php_ini():
            cmd += ["-c", php_ini()]
        p = start(cmd, "php-fpm", cpus=CFG["server_cpus"])
        if wait_path(PHP_SOCK, p):
            BACKENDS["php-fpm"] = p
            SAMPLER.add("php-fpm", p.pid, [os.path.realpath(fpm)])
        else:
            log("php-fpm did not start:", tail(os.path.join(W, "logs", "php-fpm.log")))
    p = start([FLUP_PYTHON, os.path.join(BENCH, "apps", "hello_flup.py"), FLUP_SOCK], "flup",
              cpus=CFG["server_cpus"])
    if wait_path(FLUP_SOCK, p):
        BACKENDS["flup"] = p
        SAMPLER.add("flup", p.pid, [])
    else:
        log("flup did not start:", tail(os.path.join(W, "logs", "flup.log")))
    fw = shutil.which("fcgiwrap") or (os.path.exists("/usr/sbin/fcgiwrap") and "/usr/sbin/fcgiwrap")
    if fw:
        p = start([fw, "-c", str(n), "-s", f"unix:{FCGIWRAP_SOCK}"], "fcgiwrap", cpus=CFG["server_cpus"])
        if wait_path(FCGIWRAP_SOCK, p):
            os.chmod(FCGIWRAP_SOCK, 0o666)
            BACKENDS["fcgiwrap"] = p
            SAMPLER.add("fcgiwrap", p.pid, [os.path.realpath(fw)])
        else:
            log("fcgiwrap did not start:", tail(os.path.join(W, "logs", "fcgiwrap.log")))


# --------------------------------------------------------------------------
# the servers


class Server:
    name = ""
    exe = ""
    cgi_via = ""  # how the server runs CGI, for the table

    def __init__(self, port):
        self.port = port
        self.proc = None

    def available(self):
        return bool(self.exe) and os.path.exists(self.exe)

    def version(self):
        return ""

    def write_config(self):
        raise NotImplementedError

    def command(self):
        raise NotImplementedError

    def env(self):
        return None

    def start(self):
        if not port_free(self.port):
            raise RuntimeError(f"port {self.port} is in use")
        self.proc = start(self.command(), self.name, cpus=CFG["server_cpus"], env=self.env(), cwd=W)
        if not wait_port(self.port, self.proc):
            raise RuntimeError(f"{self.name} did not start: {tail(os.path.join(W, 'logs', self.name + '.log'))}")
        SAMPLER.add(self.name, self.proc.pid, [os.path.realpath(self.exe)])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc:
            SAMPLER.remove(self.name)
            stop(self.proc)
            self.proc = None


def first_line(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except Exception:
        return "?"


class Gatehouse(Server):
    name = "gatehouse"
    exe = GATEHOUSE_BIN
    cgi_via = "built in"

    def version(self):
        try:
            rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                                 text=True).stdout.strip()
        except OSError:
            rev = "?"
        return f"gatehouse {rev}"

    def write_config(self):
        n = CFG["workers"]
        with open(os.path.join(W, "conf", "gatehouse.yaml"), "w") as f:
            f.write(f"""listen: ["127.0.0.1:{self.port}"]
document_root: {W}/htdocs
access_log: "off"
error_log: "-"
log_level: warn
shutdown_grace: 2s
limits:
  max_request_body: 4GiB
  keepalive_timeout: 75s
cgi:
  - prefix: /cgi-bin/
    dir: {W}/cgi-bin
    interpreters:
      .py: {SYS_PYTHON}
      .sh: /bin/sh
    timeout: 60s
    max_processes: 64
fastcgi:
  - match: '\\.php$'
    backends: ["unix:{PHP_SOCK}"]
    keepalive: {n}
    max_conns: {n}
  - prefix: /flup/
    backends: ["unix:{FLUP_SOCK}"]
    keepalive: {n}
""")

    def command(self):
        return [self.exe, "--config", os.path.join(W, "conf", "gatehouse.yaml")]


class Nginx(Server):
    name = "nginx"
    exe = "/usr/sbin/nginx"
    cgi_via = "fcgiwrap"

    def version(self):
        return first_line([self.exe, "-v"])

    def write_config(self):
        n = CFG["workers"]
        params = os.path.join(W, "conf", "fastcgi_params")
        with open(params, "w") as f:
            # Debian's /etc/nginx/fastcgi_params minus SCRIPT_NAME (set per location)
            f.write("""fastcgi_param QUERY_STRING $query_string;
fastcgi_param REQUEST_METHOD $request_method;
fastcgi_param CONTENT_TYPE $content_type;
fastcgi_param CONTENT_LENGTH $content_length;
fastcgi_param REQUEST_URI $request_uri;
fastcgi_param DOCUMENT_URI $document_uri;
fastcgi_param DOCUMENT_ROOT $document_root;
fastcgi_param SERVER_PROTOCOL $server_protocol;
fastcgi_param REQUEST_SCHEME $scheme;
fastcgi_param GATEWAY_INTERFACE CGI/1.1;
fastcgi_param SERVER_SOFTWARE nginx/$nginx_version;
fastcgi_param REMOTE_ADDR $remote_addr;
fastcgi_param REMOTE_PORT $remote_port;
fastcgi_param SERVER_ADDR $server_addr;
fastcgi_param SERVER_PORT $server_port;
fastcgi_param SERVER_NAME $server_name;
fastcgi_param REDIRECT_STATUS 200;
""")
        with open(os.path.join(W, "conf", "nginx.conf"), "w") as f:
            f.write(f"""daemon off;
master_process on;
user root;
worker_processes {cpu_count(CFG["server_cpus"])};
worker_rlimit_nofile 65536;
pid {W}/run/nginx.pid;
error_log {W}/logs/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  types {{ text/html html; application/octet-stream bin; }}
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_max_body_size 0;
  client_body_temp_path {W}/tmp/nginx-body;
  fastcgi_temp_path {W}/tmp/nginx-fastcgi;
  proxy_temp_path {W}/tmp/nginx-proxy;
  scgi_temp_path {W}/tmp/nginx-scgi;
  uwsgi_temp_path {W}/tmp/nginx-uwsgi;
  upstream php {{ server unix:{PHP_SOCK}; keepalive {n}; }}
  upstream flup {{ server unix:{FLUP_SOCK}; keepalive {n}; }}
  upstream fcgiwrap {{ server unix:{FCGIWRAP_SOCK}; }}
  server {{
    listen 127.0.0.1:{self.port};
    server_name localhost;
    root {W}/htdocs;
    location / {{ }}
    location ~ \\.php$ {{
      fastcgi_pass php;
      fastcgi_keep_conn on;
      include {params};
      fastcgi_param SCRIPT_NAME $fastcgi_script_name;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
    }}
    location /flup/ {{
      fastcgi_pass flup;
      fastcgi_keep_conn on;
      include {params};
      fastcgi_param SCRIPT_NAME /flup;
      fastcgi_param PATH_INFO $uri;
    }}
    location /cgi-bin/ {{
      root {W};
      fastcgi_pass fcgiwrap;
      include {params};
      fastcgi_param SCRIPT_NAME $fastcgi_script_name;
      fastcgi_param SCRIPT_FILENAME {W}$fastcgi_script_name;
    }}
  }}
}}
""")

    def command(self):
        return [self.exe, "-p", os.path.join(W, "nginx") + "/", "-e", os.path.join(W, "logs", "nginx-error.log"),
                "-c", os.path.join(W, "conf", "nginx.conf")]


class Lighttpd(Server):
    name = "lighttpd"
    exe = "/usr/sbin/lighttpd"
    cgi_via = "mod_cgi"

    def version(self):
        return first_line([self.exe, "-v"])

    def write_config(self):
        with open(os.path.join(W, "conf", "lighttpd.conf"), "w") as f:
            f.write(f"""server.modules = ("mod_access", "mod_alias", "mod_fastcgi", "mod_cgi")
server.document-root = "{W}/htdocs"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{W}/logs/lighttpd-error.log"
server.upload-dirs = ("{W}/tmp")
server.max-fds = 65536
server.max-connections = 16384
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 75
server.max-request-size = 4194304
index-file.names = ("index.html")
mimetype.assign = (".html" => "text/html", ".bin" => "application/octet-stream")
fastcgi.server = (
  ".php" => (("socket" => "{PHP_SOCK}", "check-local" => "enable")),
  "/flup/" => (("socket" => "{FLUP_SOCK}", "check-local" => "disable")),
)
alias.url = ("/cgi-bin/" => "{W}/cgi-bin/")
$HTTP["url"] =^ "/cgi-bin/" {{
  cgi.assign = ("" => "")
}}
""")

    def command(self):
        return [self.exe, "-D", "-f", os.path.join(W, "conf", "lighttpd.conf")]


class Apache(Server):
    name = "apache"
    exe = "/usr/sbin/apache2"
    cgi_via = "mod_cgid"

    def version(self):
        return first_line([self.exe, "-v"]) + " (event MPM)"

    def write_config(self):
        mods = ["mpm_event", "authz_core", "mime", "dir", "alias", "cgid", "proxy", "proxy_fcgi"]
        load = "\n".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so" for m in mods)
        with open(os.path.join(W, "conf", "apache2.conf"), "w") as f:
            f.write(f"""ServerRoot {W}/apache
{load}
DefaultRuntimeDir {W}/run
PidFile {W}/run/apache2.pid
Mutex file:{W}/run default
ScriptSock {W}/run/cgid.sock
Listen 127.0.0.1:{self.port}
ServerName localhost
User www-data
Group www-data
ErrorLog {W}/logs/apache-error.log
LogLevel warn
TypesConfig /etc/mime.types
AddType application/octet-stream .bin
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 75
LimitRequestBody 0
StartServers 2
ServerLimit 16
ThreadsPerChild 64
MaxRequestWorkers 1024
MinSpareThreads 64
MaxSpareThreads 1024
MaxConnectionsPerChild 0
<Directory />
  Require all denied
  AllowOverride None
</Directory>
DocumentRoot {W}/htdocs
<Directory {W}/htdocs>
  Require all granted
</Directory>
DirectoryIndex index.html
ScriptAlias /cgi-bin/ {W}/cgi-bin/
<Directory {W}/cgi-bin>
  Require all granted
</Directory>
<FilesMatch "\\.php$">
  SetHandler "proxy:unix:{PHP_SOCK}|fcgi://localhost"
</FilesMatch>
ProxyPass /flup/ unix:{FLUP_SOCK}|fcgi://localhost/flup/
""")

    def command(self):
        return [self.exe, "-f", os.path.join(W, "conf", "apache2.conf"), "-DFOREGROUND"]


class Caddy(Server):
    name = "caddy"
    exe = "/usr/bin/caddy"
    cgi_via = "fcgiwrap"

    def version(self):
        return "caddy " + first_line([self.exe, "version"])

    def env(self):
        e = dict(os.environ)
        e.update(HOME=os.path.join(W, "home"), XDG_DATA_HOME=os.path.join(W, "home"),
                 XDG_CONFIG_HOME=os.path.join(W, "home"))
        return e

    def write_config(self):
        # Caddy has no CGI of its own (the Debian package has no CGI plugin):
        # like nginx it reaches the CGI programs through fcgiwrap. Its
        # fastcgi transport without `split` puts the whole path in PATH_INFO,
        # so SCRIPT_FILENAME and SCRIPT_NAME are set explicitly.
        # php_fastcgi is limited to *.php paths (as nginx's `location ~ \.php$`):
        # unscoped, its try_files stat()s every static request too, which
        # cost Caddy two thirds of its static rate here.
        with open(os.path.join(W, "conf", "Caddyfile"), "w") as f:
            f.write(f"""{{
  admin off
  auto_https off
}}
http://127.0.0.1:{self.port} {{
  bind 127.0.0.1
  handle /cgi-bin/* {{
    root * {W}
    reverse_proxy unix/{FCGIWRAP_SOCK} {{
      transport fastcgi {{
        env SCRIPT_FILENAME {W}{{http.request.uri.path}}
        env SCRIPT_NAME {{http.request.uri.path}}
        env PATH_INFO ""
      }}
    }}
  }}
  handle /flup/* {{
    reverse_proxy unix/{FLUP_SOCK} {{
      transport fastcgi {{
        env SCRIPT_NAME /flup
      }}
    }}
  }}
  handle {{
    root * {W}/htdocs
    @php path *.php
    php_fastcgi @php unix/{PHP_SOCK}
    file_server
  }}
}}
""")

    def command(self):
        return [self.exe, "run", "--config", os.path.join(W, "conf", "Caddyfile"), "--adapter", "caddyfile"]


SERVER_CLASSES = {"gatehouse": Gatehouse, "nginx": Nginx, "lighttpd": Lighttpd, "apache": Apache, "caddy": Caddy}

# --------------------------------------------------------------------------
# load generation


def check(port, path, marker, size, timeout=30):
    """One request; None when the answer is right, else what was wrong."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
    except Exception as e:
        return f"no response ({type(e).__name__}: {e})"[:120]
    if r.status != 200:
        snippet = re.sub(r"<[^>]*>|\s+", " ", body[:200].decode("latin-1")).strip()[:60]
        return f"HTTP {r.status}" + (f": {snippet}" if snippet else "")
    if marker is not None and marker.encode() not in body:
        return f"body without {marker!r}: {body[:40]!r}"
    if size is not None and len(body) != size:
        return f"{len(body)} bytes, expected {size}"
    return None


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", s)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(out):
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if m:
        r["requests"] = int(m.group(1))
        r["seconds"] = to_ms(m.group(2) + m.group(3)) / 1e3
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["wrk_rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        r[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = dict(zip(["connect", "read", "write", "timeout"], map(int, m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    req = r.get("requests", 0)
    ok = max(req - r["non2xx"], 0)
    r["rps"] = ok / r["seconds"] if r.get("seconds") else 0.0
    errs = r["non2xx"] + sum(r["socket_errors"].values())
    r["error_fraction"] = errs / max(req, 1) if req else (1.0 if errs else 0.0)
    return r


def wrk(port, path, conns, duration):
    threads = max(1, min(CFG["wrk_threads"], conns))
    duration = max(1, int(round(duration)))
    cmd = ["taskset", "-c", CFG["client_cpus"], "wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s",
           f"--timeout={CFG['wrk_timeout']}", "--latency", f"http://127.0.0.1:{port}{path}"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = None
    try:
        end = time.time() + duration + 60
        while p.poll() is None:
            if SAMPLER.low_memory:
                guard = f"memory guard: less than {CFG['mem_guard'] >> 20} MiB available, load stopped"
                p.kill()
            elif time.time() > end:
                guard = "wrk did not finish"
                p.kill()
            time.sleep(0.1)
        out, err = p.communicate()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if guard:
        log("  " + guard)
        return {"error": guard, "rps": 0.0, "raw": out + err}
    r = parse_wrk(out)
    r["raw"] = out + err
    if "requests in" not in out:
        r["error"] = "wrk: " + ((p.stderr or out).strip().splitlines() or ["no output"])[0][:100]
    return r


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def settle(srv):
    """Wait until the CGI children the last load started have all ended (in
    the server's session and fcgiwrap's), at most SETTLE_MAX seconds, so that
    one case's leftovers do not load the next. Returns the seconds waited."""
    t0 = time.time()
    groups = [srv.name] + (["fcgiwrap"] if "fcgiwrap" in BACKENDS else [])
    while time.time() - t0 < CFG["settle_max"]:
        SAMPLER.scan()
        if not any(SAMPLER.others(g) for g in groups) and not SAMPLER.low_memory:
            break
        time.sleep(0.2)
    waited = time.time() - t0
    if waited > 2:
        log(f"  waited {waited:.0f} s for {srv.name}'s CGI children to end")
    return waited


def run_case(srv, case, results):
    name, path, marker, size = case
    out = results.setdefault(name, {})
    settle(srv)
    err = check(srv.port, path, marker, size)
    if err:
        log(f"  {srv.name} {name}: ERROR {err}")
        for c in CFG["connections"]:
            out[str(c)] = {"error": err, "runs": []}
        return
    for conns in CFG["connections"]:
        tag = f"{name}@{conns}"
        SAMPLER.tag(srv.name, tag)
        for b in BACKENDS:
            SAMPLER.tag(b, f"{srv.name}:{tag}")
        if CFG["warmup"] > 0:
            wrk(srv.port, path, conns, CFG["warmup"])
        runs = []
        for i in range(CFG["runs"]):
            r = wrk(srv.port, path, conns, CFG["duration"])
            runs.append(r)
            if not srv.alive():
                break
            time.sleep(CFG["pause"])
            settle(srv)
        entry = {"runs": [{k: v for k, v in r.items() if k != "raw"} for r in runs],
                 "raw": [r.get("raw", "") for r in runs]}
        entry["rps"] = median([r.get("rps") for r in runs])
        entry["p50_ms"] = median([r.get("p50_ms") for r in runs])
        entry["p99_ms"] = median([r.get("p99_ms") for r in runs])
        entry["error_fraction"] = median([r.get("error_fraction") for r in runs])
        entry["peak_rss"] = SAMPLER.peaks(srv.name).get(tag)
        entry["peak_pss"] = SAMPLER.peaks(srv.name, "pss_peaks").get(tag)
        entry["peak_threads"] = SAMPLER.peaks(srv.name, "threads").get(tag)
        if not srv.alive():
            entry["error"] = f"server died ({tail(os.path.join(W, 'logs', srv.name + '.log'), 2)})"[:160]
        elif not entry["rps"]:
            errs = [r["error"] for r in runs if r.get("error")]
            entry["error"] = errs[0] if errs else "no successful responses"
        out[str(conns)] = entry
        log(f"  {srv.name} {name} c={conns}: {entry['rps'] or 0:.0f} req/s p50 {fmt_ms(entry['p50_ms'])} ms "
            f"p99 {fmt_ms(entry['p99_ms'])} ms err {100 * (entry['error_fraction'] or 0):.1f}% "
            f"RSS {fmt_mib(entry['peak_rss'])} MiB, {entry['peak_threads']} threads"
            + (f" ERROR {entry['error']}" if entry.get("error") else ""))
        if not srv.alive():
            log(f"  {srv.name} died; restarting it for the next case")
            srv.stop()
            srv.start()
            SAMPLER.tag(srv.name, "restarted")
            return


def bench_server(srv, results):
    res = results.setdefault(srv.name, {"cases": {}})
    res["version"] = srv.version()
    res["cgi_via"] = srv.cgi_via
    srv.write_config()
    try:
        srv.start()
    except RuntimeError as e:
        log(f"{srv.name}: {e}")
        res["error"] = str(e)
        return
    try:
        time.sleep(1)
        res["rss_idle"], res["pss_idle"] = SAMPLER.measure(srv.name)
        log(f"{srv.name}: idle RSS {res['rss_idle'] / 2**20:.1f} MiB (PSS {res['pss_idle'] / 2**20:.1f})")
        for case in ALL_CASES:
            if case[0] in CFG["cases"]:
                run_case(srv, case, res["cases"])
        time.sleep(2)
        settle(srv)
        time.sleep(1)
        if srv.alive():
            res["rss_idle_after"], res["pss_idle_after"] = SAMPLER.measure(srv.name)
        res["rss_peaks"] = SAMPLER.peaks(srv.name)
        res["pss_peaks"] = SAMPLER.peaks(srv.name, "pss_peaks")
        res["thread_peaks"] = SAMPLER.peaks(srv.name, "threads")
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# the physical limits


def run_json(cmd, timeout):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return json.loads(r.stdout.strip().splitlines()[-1])
    except Exception as e:
        return {"error": str(e)[:200]}


def measure_limits():
    limits = {}
    d = CFG["duration"]
    spawnloop = os.path.join(W, "bin", "spawnloop")
    hello = os.path.join(W, "cgi-bin", "hello")
    variants = [
        ("posix_spawn", CFG["server_cpus"], 0), ("vfork", CFG["server_cpus"], 0), ("fork", CFG["server_cpus"], 0),
        ("posix_spawn", None, 0), ("vfork", None, 0), ("fork", None, 0), ("fork", None, 256),
    ]
    for mode, cpus, ballast in variants:
        key = f"spawn:{mode}:{'cpu' + cpus if cpus else 'all'}" + (f":{ballast}MiB" if ballast else "")
        cmd = [spawnloop, mode, hello, str(d), "2", str(ballast)]
        if cpus:
            cmd = ["taskset", "-c", cpus] + cmd
        runs = [run_json(cmd, d + 120) for _ in range(CFG["runs"])]
        limits[key] = {"runs": runs, "per_sec": median([r.get("per_sec") for r in runs]),
                       "mode": mode, "cpus": cpus or "all (unpinned)", "ballast_mib": ballast}
        log(f"limit {key}: {limits[key]['per_sec']}/s")
    fcgiload = os.path.join(W, "bin", "fcgiload")
    common = ["REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1", "GATEWAY_INTERFACE=CGI/1.1",
              "SERVER_NAME=localhost", "SERVER_PORT=80", "REMOTE_ADDR=127.0.0.1", "REMOTE_PORT=40000",
              "SERVER_ADDR=127.0.0.1", "HTTP_HOST=localhost", f"DOCUMENT_ROOT={W}/htdocs", "QUERY_STRING="]
    targets = []
    if "php-fpm" in BACKENDS:
        targets.append(("php-fpm", PHP_SOCK, "hello from PHP",
                        [f"SCRIPT_FILENAME={W}/htdocs/hello.php", "SCRIPT_NAME=/hello.php", "REQUEST_URI=/hello.php"]))
    if "flup" in BACKENDS:
        targets.append(("flup", FLUP_SOCK, "hello from flup",
                        ["SCRIPT_NAME=/flup", "PATH_INFO=/hello", "REQUEST_URI=/flup/hello"]))
    for name, sock, marker, params in targets:
        conns = CFG["workers"]
        cmd = ["taskset", "-c", CFG["client_cpus"], fcgiload, f"unix:{sock}", str(conns), str(d), marker] \
            + common + params
        runs = [run_json(cmd, d + 60) for _ in range(CFG["runs"])]
        limits[f"fastcgi:{name}"] = {"runs": runs, "per_sec": median([r.get("per_sec") for r in runs]),
                                     "p50_ms": median([r.get("p50_ms") for r in runs]),
                                     "p99_ms": median([r.get("p99_ms") for r in runs]), "conns": conns}
        log(f"limit fastcgi:{name}: {limits[f'fastcgi:{name}']['per_sec']}/s")
    limits.update(measure_hyper_floor())
    return limits


def measure_hyper_floor():
    """hyper alone answering 1 KiB from memory, pinned as the servers are:
    what the static 1 KB case would reach with no work of gatehouse's own."""
    exe = os.path.join(REPO, "target", "release", "examples", "hyper_floor")
    if "static-1k" not in CFG["cases"] or not os.path.exists(exe):
        return {}
    port = CFG["base_port"] + 90
    p = subprocess.Popen(["taskset", "-c", CFG["server_cpus"], exe, str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    limits = {}
    try:
        time.sleep(0.5)
        for c in CFG["connections"]:
            wrk(port, "/", c, CFG["warmup"])
            runs = [wrk(port, "/", c, CFG["duration"]) for _ in range(CFG["runs"])]
            key = f"http:hyper-1k:{c}"
            limits[key] = {"runs": [{k: r.get(k) for k in ("rps", "p50_ms", "p99_ms")} for r in runs],
                           "per_sec": median([r.get("rps") for r in runs]),
                           "p99_ms": median([r.get("p99_ms") for r in runs]), "conns": c}
            log(f"limit {key}: {limits[key]['per_sec']}/s")
    finally:
        p.kill()
        p.wait()
    return limits


# --------------------------------------------------------------------------
# streaming memory: 1 GB up (CGI, php-fpm) and down (static), fresh server each


def warm_page_cache(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


def stream_one(srv, kind):
    n = CFG["stream_bytes"]
    if kind == "upload-cgi":
        path, data = "/cgi-bin/count", os.path.join(W, "tmp", "upload.bin")
    elif kind == "upload-php":
        path, data = "/upload.php", os.path.join(W, "tmp", "upload.bin")
    else:
        path, data = "/1g.bin", None
    # Every server reads the same file: warm it into the page cache first, or
    # the first server measured pays for filling it (the files are sparse, so
    # that is zero-filling a gigabyte of pages) and the rest ride on it.
    warm_page_cache(data or os.path.join(W, "htdocs", "1g.bin"))
    out = os.path.join(W, "tmp", "stream.out")
    cmd = ["taskset", "-c", CFG["client_cpus"], "curl", "-sS", "-m", "300", "-o", out,
           "-w", "%{http_code} %{size_download} %{time_total}", "-H", "Expect:"]
    if data:
        cmd += ["-X", "POST", "-H", "Content-Type: application/octet-stream", "-T", data]
    cmd.append(f"http://127.0.0.1:{srv.port}{path}")
    srv.start()
    try:
        time.sleep(0.5)
        SAMPLER.reset(srv.name, "stream")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=330)
        time.sleep(0.3)
        SAMPLER.scan()
        peak = SAMPLER.peaks(srv.name).get("stream", 0)
        peak_pss = SAMPLER.peaks(srv.name, "pss_peaks").get("stream", 0)
        hwm = SAMPLER.hwm_sum(srv.name)
        backend_peak = None
        if kind == "upload-php" and "php-fpm" in BACKENDS:
            backend_peak = SAMPLER.peaks("php-fpm").get(f"{srv.name}:stream")
    finally:
        srv.stop()
    res = {"peak_rss": peak, "peak_pss": peak_pss, "hwm_sum": hwm}
    if backend_peak:
        res["php_fpm_peak_rss"] = backend_peak
    parts = r.stdout.split()
    if r.returncode != 0 or len(parts) < 3:
        res["error"] = (r.stderr.strip() or f"curl exit {r.returncode}")[:120]
        return res
    code, size, secs = int(parts[0]), int(parts[1]), float(parts[2])
    res.update(status=code, seconds=secs, mb_per_s=n / secs / 1e6 if secs else None)
    body = open(out, "rb").read(100) if data else b""
    if code != 200:
        res["error"] = f"HTTP {code}"
    elif data and body.strip() != str(n).encode():
        res["error"] = f"script saw {body.strip()[:30].decode('latin-1')!r} bytes, sent {n}"
    elif not data and size != n:
        res["error"] = f"{size} bytes, expected {n}"
    os.unlink(out) if os.path.exists(out) else None
    return res


def streaming(servers):
    out = {}
    for srv in servers:
        out[srv.name] = {}
        for kind in ["upload-cgi", "upload-php", "download"]:
            if "php-fpm" in BACKENDS:
                SAMPLER.tag("php-fpm", f"{srv.name}:stream")
            try:
                r = stream_one(srv, kind)
            except Exception as e:
                r = {"error": f"{type(e).__name__}: {e}"[:160]}
            out[srv.name][kind] = r
            log(f"stream {srv.name} {kind}: peak RSS {(r.get('peak_rss') or 0) / 2**20:.1f} MiB "
                f"{r.get('mb_per_s') or 0:.0f} MB/s" + (f" ERROR {r['error']}" if r.get("error") else ""))
    return out


# --------------------------------------------------------------------------
# the report


def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_ms(x):
    if x is None:
        return "–"
    return f"{x:.2f}" if x < 10 else f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def fmt_mib(b):
    return "–" if not b else f"{b / 2**20:.1f}"


def cell(e):
    if e is None:
        return "n/a"
    if e.get("error"):
        return "ERR: " + e["error"].replace("|", "/")[:50]
    s = f"{fmt_int(e['rps'])} · {fmt_ms(e['p50_ms'])}/{fmt_ms(e['p99_ms'])}"
    if (e.get("error_fraction") or 0) > 0.01:
        s += f" ⚠{100 * e['error_fraction']:.0f}% err"
    return s


def good(e):
    """A figure that can be compared: it worked and at most 5 % of the
    requests failed (a server that fails most requests is not the best peer,
    whatever its req/s)."""
    return e is not None and not e.get("error") and bool(e.get("rps")) and (e.get("error_fraction") or 0) <= 0.05


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            model = m.group(1) if m else "?"
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB RAM, Linux {platform.release()}"


LIMIT_FOR = {"cgi-c": ["spawn:posix_spawn:cpu{s}", "spawn:posix_spawn:all"],
             "php": ["fastcgi:php-fpm"], "flup": ["fastcgi:flup"], "static-1k": ["http:hyper-1k:{c}"]}


def report(data):
    L = []
    meta = data["meta"]
    cfg = meta["config"]
    servers = [s for s in cfg["servers"] if s in data["servers"]]
    peers = [s for s in servers if s != "gatehouse"]
    title = f"# gatehouse benchmark, {meta['date']}"
    if cfg["label"]:
        title += f" ({cfg['label']})"
    L += [title, ""]
    if cfg["note"]:
        L += [f"> **{cfg['note']}**", ""]
    L += [f"- Machine: {meta['machine']}; load average at start {meta['loadavg_start']}, at end {meta.get('loadavg_end', '?')}.",
          f"- Protocol: wrk {meta['wrk']}, {cfg['wrk_threads']} thread, `--latency --timeout {cfg['wrk_timeout']}`, "
          f"{cfg['duration']:g} s per run after {cfg['warmup']:g} s warm-up, median of {cfg['runs']} run(s); "
          f"connections {', '.join(map(str, cfg['connections']))}.",
          f"- CPU split (taskset): servers, php-fpm, flup, fcgiwrap and every CGI child on CPU {cfg['server_cpus']}; "
          f"wrk, the FastCGI load client and the harness on CPU {cfg['client_cpus']}; "
          f"nginx with {cpu_count(cfg['server_cpus'])} worker process(es), gatehouse with its default `workers: auto`.",
          f"- Backends shared by every server: php-fpm `pm = static` with {cfg['workers']} workers, one flup process "
          f"(threaded), fcgiwrap with {cfg['workers']} workers (nginx and Caddy CGI); all on Unix sockets.",
          "- Versions: " + "; ".join(f"{data['servers'][s].get('version', s)}" for s in servers)
          + f"; {meta.get('php', '')}; flup {meta.get('flup', '?')}.",
          f"- Run time {meta.get('elapsed_s', 0) / 60:.1f} min.", ""]
    L += ["Cells: requests/s · p50/p99 latency in ms (each the median over the runs). "
          "⚠ marks runs with more than 1 % errors (non-2xx, socket errors, timeouts); a server with more than 5 % "
          "is not counted as the best peer, and gatehouse with more than 5 % counts as failed. "
          "`ERR` is a case that did not work on that server (one checked request before the load).", ""]

    lim = data.get("limits", {})
    if lim:
        L += ["## The physical limits (same run: no HTTP, or hyper alone)", "",
              "| limit | CPUs | per second | note |", "|---|---|---|---|"]
        for k, v in lim.items():
            if k.startswith("http:"):
                L.append(f"| hyper alone, 1 KiB from memory, {v['conns']} conns (`bench/tools/hyper_floor.rs`) | "
                         f"server {cfg['server_cpus']}, wrk {cfg['client_cpus']} | {fmt_int(v['per_sec'])} | "
                         f"p99 {fmt_ms(v.get('p99_ms'))} ms; no files, routing or checks |")
            elif k.startswith("spawn:"):
                note = "pipe, spawn, read to EOF, waitpid; 2 workers"
                if v.get("ballast_mib"):
                    note += f"; each worker holds {v['ballast_mib']} MiB"
                L.append(f"| {v['mode']} of the C CGI | {v['cpus']} | {fmt_int(v['per_sec'])} | {note} |")
            else:
                L.append(f"| {k.split(':', 1)[1]} driven directly (FastCGI, keep-alive, {v['conns']} conns) | "
                         f"backend {cfg['server_cpus']}, client {cfg['client_cpus']} | {fmt_int(v['per_sec'])} | "
                         f"p50 {fmt_ms(v.get('p50_ms'))} ms, p99 {fmt_ms(v.get('p99_ms'))} ms |")
        L.append("")

    L += ["## Throughput and latency", ""]
    hdr = "| case | conns | " + " | ".join(servers)
    has_gh = "gatehouse" in servers and peers
    hdr += " | best peer | gatehouse ÷ best (req/s) | gatehouse p99 ÷ lowest peer p99 |" if has_gh else " |"
    L += [hdr, "|" + "---|" * (2 + len(servers) + (3 if has_gh else 0))]
    ratios = {}
    for case in cfg["cases"]:
        for c in cfg["connections"]:
            row = [case, str(c)]
            es = {s: data["servers"][s].get("cases", {}).get(case, {}).get(str(c)) for s in servers}
            row += [cell(es[s]) for s in servers]
            if has_gh:
                okp = [s for s in peers if good(es[s])]
                best = max(okp, key=lambda s: es[s]["rps"]) if okp else None
                p99s = [es[s]["p99_ms"] for s in okp if es[s].get("p99_ms")]
                gh = es.get("gatehouse")
                row.append(best or "–")
                if best and good(gh):
                    r = gh["rps"] / es[best]["rps"]
                    pr = gh["p99_ms"] / min(p99s) if p99s and gh.get("p99_ms") else None
                    ratios[(case, c)] = (r, pr)
                    row += [f"{r:.2f}×", f"{pr:.2f}×" if pr else "–"]
                elif best:  # gatehouse failed where a peer did not
                    ratios[(case, c)] = (0.0, None)
                    row += ["0 (gatehouse failed)", "–"]
                else:
                    row += ["–", "–"]
            L.append("| " + " | ".join(row) + " |")
    L.append("")
    L += ["CGI: gatehouse runs the programs itself, lighttpd with mod_cgi, Apache with mod_cgid, nginx and Caddy "
          "through fcgiwrap (neither can run CGI programs itself; that is what their users do).", ""]

    # fraction of the limits
    rows = []
    for case in cfg["cases"]:
        for c in cfg["connections"]:
            keys = [k.format(s=cfg["server_cpus"], c=c) for k in LIMIT_FOR.get(case, [])]
            for k in [k for k in keys if lim.get(k, {}).get("per_sec")]:
                row = [case, k, str(c)]
                for s in servers:
                    e = data["servers"][s].get("cases", {}).get(case, {}).get(str(c))
                    row.append(f"{100 * e['rps'] / lim[k]['per_sec']:.0f} %" if good(e) else "–")
                rows.append(row)
    if rows:
        L += ["## Fraction of the physical limit reached", "",
              "| case | limit | conns | " + " | ".join(servers) + " |", "|" + "---|" * (3 + len(servers))]
        L += ["| " + " | ".join(r) + " |" for r in rows]
        L.append("")

    # memory
    L += ["## Memory (summed over the server's own processes, MiB: RSS / PSS)", "",
          "Master and workers (processes running the server's executable; CGI children and the shared backends "
          f"are not counted), sampled every {cfg['sample_interval']:g} s. RSS counts a page shared by several "
          "processes (libraries, a file mapped by every worker) once per process; PSS divides it among them. "
          "Threads: the most seen at once.", "",
          "| server | idle at start | " + " | ".join(f"peak at {c} conns" for c in cfg["connections"])
          + " | peak overall | idle after the load | threads (peak) |",
          "|" + "---|" * (5 + len(cfg["connections"]))]

    def both(rss, pss):
        return "–" if not rss else f"{fmt_mib(rss)} / {fmt_mib(pss)}"

    for s in servers:
        d = data["servers"][s]
        peaks, psss = d.get("rss_peaks", {}), d.get("pss_peaks", {})
        per_c = []
        for c in cfg["connections"]:
            v = [b for t, b in peaks.items() if t.endswith(f"@{c}")]
            p = [b for t, b in psss.items() if t.endswith(f"@{c}")]
            per_c.append(both(max(v), max(p) if p else None) if v else "–")
        thr = d.get("thread_peaks", {})
        L.append(f"| {s} | {both(d.get('rss_idle'), d.get('pss_idle'))} | " + " | ".join(per_c)
                 + f" | {both(max(peaks.values()) if peaks else None, max(psss.values()) if psss else None)}"
                 + f" | {both(d.get('rss_idle_after'), d.get('pss_idle_after'))}"
                 + f" | {max(thr.values()) if thr else '–'} |")
    L.append("")
    bk = data.get("backend_rss", {})
    if bk:
        L += ["Shared backends (peak RSS sum while each server was measured, MiB): "
              + "; ".join(f"{b}: " + ", ".join(f"{s} {fmt_mib(v)}" for s, v in sorted(per.items()))
                          for b, per in bk.items()), ""]

    st = data.get("streaming")
    if st:
        n = cfg["stream_bytes"]
        L += [f"## Streaming memory ({n / 2**30:g} GiB through a freshly started server)", "",
              "Peak memory of the server's processes, MiB: sampled RSS sum / sampled PSS sum / sum of the "
              "processes' VmHWM (the kernel's own RSS peak, which sampling cannot miss); and the transfer rate.", "",
              "| server | upload to CGI (reads stdin to EOF) | upload to php-fpm (php://input in chunks) | "
              "download (static file) |", "|---|---|---|---|"]
        for s in servers:
            if s not in st:
                continue
            row = [s]
            for kind in ["upload-cgi", "upload-php", "download"]:
                r = st[s].get(kind, {})
                if r.get("error"):
                    row.append("ERR: " + r["error"].replace("|", "/")[:60]
                               + (f" (peak {fmt_mib(r.get('peak_rss'))})" if r.get("peak_rss") else ""))
                else:
                    row.append(f"{fmt_mib(r.get('peak_rss'))} / {fmt_mib(r.get('peak_pss'))} / "
                               f"{fmt_mib(r.get('hwm_sum'))} MiB · "
                               f"{r.get('mb_per_s') or 0:.0f} MB/s")
            L.append("| " + " | ".join(row) + " |")
        L.append("")

    if "gatehouse" in servers:
        L += targets(data, ratios, lim, cfg)
    return "\n".join(L) + "\n"


def targets(data, ratios, lim, cfg):
    L = ["## gatehouse against the targets of issue 7", "",
         "| target | measured (worst over the connection counts) | met |", "|---|---|---|"]

    def worst(case, idx=0):
        v = [ratios[(case, c)][idx] for c in cfg["connections"] if (case, c) in ratios
             and ratios[(case, c)][idx] is not None]
        return (min(v) if idx == 0 else max(v)) if v else None

    def row(name, val, ok, fmt="{:.2f}×"):
        L.append(f"| {name} | {'–' if val is None else fmt.format(val)} | "
                 f"{'–' if val is None else ('yes' if ok(val) else '**no**')} |")

    for case, goal in [("static-1k", 1.0), ("static-100k", 1.0), ("static-10m", 0.95), ("cgi-c", 1.3),
                       ("cgi-sh", 1.1), ("cgi-py", 1.0), ("php", 1.2), ("flup", 1.0)]:
        if case in cfg["cases"]:
            row(f"{case}: ≥ {goal}× the best peer", worst(case), lambda v, g=goal: v >= g)
    k = f"spawn:posix_spawn:cpu{cfg['server_cpus']}"
    if "cgi-c" in cfg["cases"] and lim.get(k, {}).get("per_sec"):
        es = data["servers"]["gatehouse"].get("cases", {}).get("cgi-c", {})
        v = [es[str(c)]["rps"] for c in cfg["connections"] if good(es.get(str(c)))]
        best = max(v) if v else None
        row(f"cgi-c: ≥ 60 % of posix_spawn on CPU {cfg['server_cpus']} (best connection count)",
            best / lim[k]["per_sec"] if best else None, lambda x: x >= 0.6, "{:.0%}")
        k2 = "spawn:posix_spawn:all"
        if lim.get(k2, {}).get("per_sec"):
            row("cgi-c: ≥ 60 % of posix_spawn on all CPUs (best connection count)",
                best / lim[k2]["per_sec"] if best else None, lambda x: x >= 0.6, "{:.0%}")
    p = [ratios[k][1] for k in ratios if ratios[k][1] is not None]
    row("p99 no worse than the lowest peer p99, every case", max(p) if p else None, lambda v: v <= 1.0)
    d = data["servers"]["gatehouse"]
    row("RSS idle < 15 MB", d.get("rss_idle") / 1e6 if d.get("rss_idle") else None, lambda v: v < 15, "{:.1f} MB")
    pk = [b for t, b in d.get("rss_peaks", {}).items() if t.endswith("@1000")]
    row("RSS at 1,000 connections < 80 MB", max(pk) / 1e6 if pk else None, lambda v: v < 80, "{:.1f} MB")
    st = data.get("streaming", {}).get("gatehouse", {})
    for kind in ["upload-cgi", "upload-php", "download"]:
        r = st.get(kind)
        if r:
            v = r.get("peak_rss") / 1e6 if r.get("peak_rss") else None
            if r.get("error"):
                L.append(f"| 1 GB {kind} < 32 MB | ERR: {r['error'][:60]} | **no** |")
            else:
                row(f"1 GB {kind} < 32 MB", v, lambda x: x < 32, "{:.1f} MB")
    L.append("")
    return L


# --------------------------------------------------------------------------


def main():
    t0 = time.time()
    stopping = []

    def on_signal(signum, frame):
        if not stopping:  # once: a second signal must not break the cleanup
            stopping.append(signum)
            raise Stopping(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    now = datetime.datetime.now()
    stamp = now.strftime("%Y-%m-%d-%H%M") + (f"-{CFG['label']}" if CFG["label"] else "")
    outdir = os.environ.get("OUT_DIR", os.path.join(BENCH, "results"))
    os.makedirs(outdir, exist_ok=True)
    data = {"meta": {"date": now.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
                     "loadavg_start": open("/proc/loadavg").read().split()[0:3],
                     "config": CFG, "wrk": first_line(["wrk", "-v"]).split(" [")[0],
                     "php": first_line([php_fpm_bin(), "-v"]) if php_fpm_bin() else "no php-fpm",
                     "flup": subprocess.run([FLUP_PYTHON, "-c", "import importlib.metadata as m;"
                                             "print(m.version('flup'))"], capture_output=True,
                                            text=True).stdout.strip()},
            "servers": {}}
    data["meta"]["loadavg_start"] = " ".join(data["meta"]["loadavg_start"])
    servers = []
    port = CFG["base_port"]
    for name in ALL_SERVERS:
        cls = SERVER_CLASSES[name]
        srv = cls(port)
        port += 1
        if name not in CFG["servers"]:
            continue
        if not srv.available():
            log(f"{name}: not installed ({srv.exe}), skipped")
            data["servers"][name] = {"error": f"not installed ({srv.exe})", "cases": {}}
            continue
        servers.append(srv)
    try:
        build_fixtures()
        SAMPLER.start()
        start_backends()
        time.sleep(0.5)
        if CFG["limits"]:
            data["limits"] = measure_limits()
        for srv in servers:
            log(f"== {srv.name} on port {srv.port}")
            bench_server(srv, data["servers"])
        data["backend_rss"] = {}
        for b in BACKENDS:
            per = {}
            for tag, v in SAMPLER.peaks(b).items():
                s = tag.split(":")[0]
                if s in CFG["servers"] and "@" in tag:
                    per[s] = max(per.get(s, 0), v)
            data["backend_rss"][b] = per
        if CFG["stream"]:
            data["streaming"] = streaming(servers)
    except (KeyboardInterrupt, Stopping) as e:
        log(f"interrupted ({e}): stopping everything, writing what was measured")
        data["meta"]["interrupted"] = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for srv in servers:
            try:
                srv.stop()
            except Exception as e:
                log(f"stopping {srv.name}: {e}")
        cleanup()
        SAMPLER.halt.set()
    data["meta"]["loadavg_end"] = " ".join(open("/proc/loadavg").read().split()[0:3])
    data["meta"]["mem_available_min_mib"] = getattr(SAMPLER, "mem_min", 0) >> 20
    data["meta"]["elapsed_s"] = time.time() - t0
    md = report(data)
    with open(os.path.join(outdir, f"{stamp}.json"), "w") as f:
        json.dump(data, f, indent=1, default=str)
    with open(os.path.join(outdir, f"{stamp}.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {outdir}/{stamp}.md and .json")


if __name__ == "__main__":
    main()
