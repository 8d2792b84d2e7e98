#!/usr/bin/env python3
"""Run php-fpm on the FastCGI socket that gatehouse passes as fd 0.

    php_fpm_fd0.py [--workers 4] [--php-fpm php-fpm] [--fallback php-cgi] [--user www-data]

gatehouse starts this as a `spawn:` command with a listening Unix socket as
fd 0 (the FastCGI convention). php-cgi and flup accept on fd 0 as they are;
php-fpm does not: it opens the sockets its pools `listen` on, and its start-up
puts /dev/null on fd 0. What it does take is a socket handed down through the
environment, the way a php-fpm master passes its sockets to the new master
when it reloads itself (SIGUSR2): FPM_SOCKETS="ADDRESS=FD[,ADDRESS=FD]", and a
pool whose `listen` is ADDRESS uses descriptor FD instead of opening a socket
of its own (sapi/fpm/fpm/fpm_sockets.c). So this launcher

  1. copies fd 0 to a new descriptor that survives exec (3, usually), which
     php-fpm leaves alone;
  2. writes a php-fpm configuration with one pool, [demo]: `listen` set to
     /proc/self/fd/3, `pm = static` with --workers workers, the log on stderr
     (gatehouse's error log), workers' output caught; it goes into a memfd,
     so nothing is written to disk and nothing is left behind;
  3. sets FPM_SOCKETS=/proc/self/fd/3=3 and becomes php-fpm (exec: the same
     pid), in the foreground (-F). gatehouse's supervision therefore applies
     to the php-fpm master: SIGTERM on shutdown (the master stops its
     workers), a restart when it dies.

Why `listen` is not the socket's real path: the key in FPM_SOCKETS must be
what `listen` says, and a php-fpm master that exits unlinks the path of
every Unix socket it listened on, inherited ones included. With the real
path it would delete gatehouse's socket file when it stops; the restarted
master would still accept on the (unnamed) socket, but gatehouse, which
connects by path, could no longer reach it: every PHP request would fail
until gatehouse itself restarted. /proc/self/fd/3 cannot be unlinked, so the
exit leaves the file alone, and the key names what php-fpm really uses.

A master killed outright (SIGKILL, a crash) leaves its workers running, still
accepting on the socket, in a process group gatehouse no longer watches.
Before it starts php-fpm again, this launcher asks such orphans (php-fpm pool
workers that hold this very socket and whose parent is not a php-fpm master)
to finish their request and quit (SIGQUIT), and ends those still there a
second later (SIGTERM).

Without php-fpm, --fallback NAME runs that php-cgi instead, with
PHP_FCGI_CHILDREN=--workers: php-cgi then also runs as one master that keeps
that many children accepting on fd 0. apps/needs.py, in front of this
launcher in conf/gatehouse.yaml, answers with how to install php-fpm when
neither is there. Linux only (memfd, /proc). Standard library only.
"""
import argparse
import os
import signal
import socket
import sys
import time

import needs  # find_program: PATH, the sbin directories, versioned names


def pool_config(listen, workers, user):
    """The whole php-fpm configuration: one pool on the inherited socket."""
    lines = [
        "; written by apps/php_fpm_fd0.py for a gatehouse managed backend",
        "[global]",
        "daemonize = no",
        # Started with -O, php-fpm logs to its stderr, which gatehouse copies
        # to its error log; it still opens error_log, so name something that
        # always opens (/proc/self/fd/2 does not when stderr belongs to
        # another user).
        "error_log = /dev/null",
        "",
        "[demo]",
        "listen = " + listen,
        "pm = static",
        "pm.max_children = {}".format(workers),
        # The workers' stderr (PHP warnings, error_log()) into the master's log.
        "catch_workers_output = yes",
        "decorate_workers_output = no",
        # Workers start with an empty environment (the default, said aloud):
        # a script sees the request's FastCGI params, not gatehouse's variables.
        "clear_env = yes",
        "security.limit_extensions = .php",
    ]
    if user and os.geteuid() == 0:
        lines.append("user = " + user)  # group: the user's own
    return "\n".join(lines) + "\n"


def stop_orphans(listener_fd, grace=1.0):
    """Stop php-fpm workers that hold this socket but lost their master:
    SIGQUIT (finish the request, then quit), SIGTERM after `grace` seconds
    for those still there (one idle on a connection gatehouse keeps open
    waits for its next request before it looks at the SIGQUIT)."""
    target = "socket:[{}]".format(os.fstat(listener_fd).st_ino)
    orphans = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/{}/cmdline".format(entry), "rb") as f:
                if not f.read().startswith(b"php-fpm: pool "):
                    continue
            with open("/proc/{}/stat".format(entry), "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open("/proc/{}/cmdline".format(ppid), "rb") as f:
                if f.read().startswith(b"php-fpm: master"):
                    continue
            fds = "/proc/{}/fd".format(entry)
            if any(os.readlink(os.path.join(fds, fd)) == target for fd in os.listdir(fds)):
                sys.stderr.write("php_fpm_fd0.py: stopping pid {}, a worker of a php-fpm master "
                                 "that died\n".format(entry))
                os.kill(int(entry), signal.SIGQUIT)
                orphans.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to look at
    deadline = time.monotonic() + grace
    while orphans and time.monotonic() < deadline:
        time.sleep(0.05)
        orphans = [pid for pid in orphans if running(pid)]
    for pid in orphans:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def running(pid):
    """Whether pid runs (a zombie, dead but not reaped by its new parent, does not)."""
    try:
        with open("/proc/{}/stat".format(pid), "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4,
                        help="php-fpm workers (pm.max_children); give gatehouse max_conns the same")
    parser.add_argument("--php-fpm", default="php-fpm",
                        help="the php-fpm program: a name (found on PATH, in /usr/sbin, "
                             "with a version: php-fpm8.2) or a path")
    parser.add_argument("--fallback", metavar="PHP_CGI",
                        help="run this php-cgi instead when php-fpm is not installed")
    parser.add_argument("--user", help="when started as root: the workers' user and group "
                                       "(otherwise they run as root, with -R)")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    sys.stdout.flush()

    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        sys.exit("php_fpm_fd0.py: this needs Linux (memfd_create, /proc/self/fd)")
    try:
        listener = socket.socket(fileno=0)
        path = listener.getsockname()
        listening = listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        listener.detach()  # fd 0 stays open; only the Python object goes
    except OSError:
        path, listening = None, False
    if not isinstance(path, str) or not path or not listening:
        sys.exit("php_fpm_fd0.py: fd 0 is not a listening Unix socket with a path "
                 "(run me as a gatehouse spawn: command)")

    php_fpm = needs.find_program(args.php_fpm)
    if php_fpm is None:
        php_cgi = args.fallback and needs.find_program(args.fallback)
        if not php_cgi:
            sys.exit("php_fpm_fd0.py: {} is not installed (apt-get install php-fpm)".format(args.php_fpm))
        sys.stderr.write("php_fpm_fd0.py: no {}; running {} with {} children on {}\n".format(
            args.php_fpm, php_cgi, args.workers, path))
        sys.stderr.flush()
        os.environ["PHP_FCGI_CHILDREN"] = str(args.workers)
        os.execv(php_cgi, [php_cgi])

    stop_orphans(0)
    fd = os.dup(0)                      # php-fpm puts /dev/null on fd 0 (and 1) as it starts
    os.set_inheritable(fd, True)
    listen = "/proc/self/fd/{}".format(fd)
    config = os.memfd_create("php-fpm.conf", 0)
    os.write(config, pool_config(listen, args.workers, args.user).encode())
    os.set_inheritable(config, True)
    os.environ["FPM_SOCKETS"] = "{}={}".format(listen, fd)
    # php-fpm speaks sd_notify when this is set: it is not the service systemd started.
    os.environ.pop("NOTIFY_SOCKET", None)
    command = [php_fpm, "-F", "-O", "-y", "/proc/self/fd/{}".format(config)]
    if os.geteuid() == 0 and not args.user:
        command.append("-R")            # workers as root, as gatehouse and its other backends run
    sys.stderr.write("php_fpm_fd0.py: {} on {} (fd {}), {} workers\n".format(
        php_fpm, path, fd, args.workers))
    sys.stderr.flush()
    os.execv(php_fpm, command)


if __name__ == "__main__":
    main()
