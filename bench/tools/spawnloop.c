/* The raw spawn rate: how many times per second this machine can start the
 * CGI program, collect its output through a pipe to EOF and reap it, with no
 * HTTP at all. This is the ceiling for any server's CGI case.
 *
 *   spawnloop MODE PROGRAM SECONDS [WORKERS [BALLAST_MIB]]
 *
 * MODE: fork (fork + execve), vfork (vfork + execve), posix_spawn.
 * WORKERS (default 2) processes run the loop in parallel; each one first
 * touches BALLAST_MIB MiB of private memory (default 0) to show what a large
 * parent costs a fork (not counted in the time). The rate is the sum of the
 * workers' rates. Prints one JSON object on stdout. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int spawn_one(const char *mode, char *prog)
{
    int p[2];
    char *argv[] = {prog, NULL};
    pid_t pid;
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    if (strcmp(mode, "posix_spawn") == 0) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        int rc = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) {
            errno = rc;
            pid = -1;
        }
    } else {
        pid = strcmp(mode, "vfork") == 0 ? vfork() : fork();
        if (pid == 0) {
            dup2(p[1], 1);
            execve(prog, argv, environ);
            _exit(127);
        }
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        ;
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s fork|vfork|posix_spawn PROGRAM SECONDS [WORKERS [BALLAST_MIB]]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    char *prog = argv[2];
    double secs = atof(argv[3]);
    int workers = argc > 4 ? atoi(argv[4]) : 2;
    long ballast = argc > 5 ? atol(argv[5]) : 0;
    if (strcmp(mode, "fork") && strcmp(mode, "vfork") && strcmp(mode, "posix_spawn")) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    int res[2];
    if (pipe(res) != 0)
        return 1;
    for (int w = 0; w < workers; w++) {
        if (fork() == 0) {
            close(res[0]);
            if (ballast > 0) {
                size_t len = (size_t)ballast << 20;
                char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (m == MAP_FAILED)
                    _exit(1);
                for (size_t i = 0; i < len; i += 4096)
                    m[i] = 1;
            }
            long ok = 0, bad = 0;
            double start = now(), end = start + secs;
            while (now() < end) {
                if (spawn_one(mode, prog) == 0)
                    ok++;
                else
                    bad++;
            }
            double out[3] = {ok, bad, now() - start};
            if (write(res[1], out, sizeof out) != sizeof out)
                _exit(1);
            _exit(0);
        }
    }
    close(res[1]);
    long ok = 0, bad = 0;
    double rate = 0, out[3];
    while (read(res[0], out, sizeof out) == sizeof out) {
        ok += (long)out[0];
        bad += (long)out[1];
        rate += out[2] > 0 ? out[0] / out[2] : 0;
    }
    while (wait(NULL) > 0)
        ;
    printf("{\"mode\":\"%s\",\"workers\":%d,\"ballast_mib\":%ld,\"spawns\":%ld,\"failures\":%ld,"
           "\"per_sec\":%.1f}\n",
           mode, workers, ballast, ok, bad, rate);
    return bad > 0 && ok == 0;
}
