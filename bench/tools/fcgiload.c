/* A direct FastCGI load client: the request rate of a FastCGI application
 * (php-fpm, flup) with no HTTP server in front, i.e. the ceiling for every
 * gateway's FastCGI case.
 *
 *   fcgiload ADDR CONNS SECONDS EXPECT [NAME=VALUE ...]
 *
 * ADDR is unix:/path or IP:PORT. CONNS connections are opened and kept alive
 * (FCGI_KEEP_CONN); each sends a GET request with the given parameters (no
 * body), reads the records to FCGI_END_REQUEST and sends the next one at
 * once. A connection the application closes is reopened (counted). Every
 * response's stdout must contain EXPECT (checked on the first response of a
 * connection; an empty EXPECT checks nothing). Single-threaded (epoll).
 * Prints one JSON object: requests, errors, reconnects, per_sec and latency
 * percentiles in milliseconds. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { BEGIN_REQUEST = 1, END_REQUEST = 3, PARAMS = 4, STDIN = 5, STDOUT = 6, STDERR = 7 };

struct conn {
    int fd;
    size_t sent;          /* bytes of the request written */
    unsigned char in[65536];
    size_t have;          /* bytes buffered in `in` */
    double started;       /* when the request was first written */
    int checked;          /* EXPECT already verified on this connection */
    int found;            /* EXPECT seen in this response */
};

static const char *addr_arg;
static unsigned char req[65536];
static size_t req_len;
static const char *expect;
static uint32_t *lat;     /* microseconds */
static size_t nlat, caplat;
static long errors, reconnects, bad_content;
static int ep;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put_header(unsigned char *p, int type, int len)
{
    p[0] = 1;
    p[1] = (unsigned char)type;
    p[2] = 0;
    p[3] = 1;
    p[4] = (unsigned char)(len >> 8);
    p[5] = (unsigned char)len;
    p[6] = 0;
    p[7] = 0;
}

static size_t put_len(unsigned char *p, size_t n)
{
    if (n < 128) {
        p[0] = (unsigned char)n;
        return 1;
    }
    p[0] = (unsigned char)((n >> 24) | 0x80);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
    return 4;
}

static void build_request(int nparams, char **params)
{
    unsigned char body[60000];
    size_t blen = 0;
    for (int i = 0; i < nparams; i++) {
        char *eq = strchr(params[i], '=');
        if (!eq) {
            fprintf(stderr, "parameter without '=': %s\n", params[i]);
            exit(2);
        }
        size_t kl = (size_t)(eq - params[i]), vl = strlen(eq + 1);
        if (blen + kl + vl + 8 > sizeof body) {
            fprintf(stderr, "parameters too long\n");
            exit(2);
        }
        blen += put_len(body + blen, kl);
        blen += put_len(body + blen, vl);
        memcpy(body + blen, params[i], kl);
        blen += kl;
        memcpy(body + blen, eq + 1, vl);
        blen += vl;
    }
    unsigned char *p = req;
    put_header(p, BEGIN_REQUEST, 8);
    p += 8;
    memset(p, 0, 8);
    p[1] = 1; /* FCGI_RESPONDER */
    p[2] = 1; /* FCGI_KEEP_CONN */
    p += 8;
    put_header(p, PARAMS, (int)blen);
    p += 8;
    memcpy(p, body, blen);
    p += blen;
    put_header(p, PARAMS, 0);
    p += 8;
    put_header(p, STDIN, 0);
    p += 8;
    req_len = (size_t)(p - req);
}

static int open_conn(void)
{
    int fd;
    if (strncmp(addr_arg, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strncpy(sa.sun_path, addr_arg + 5, sizeof sa.sun_path - 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
            goto fail;
    } else {
        char host[256];
        const char *colon = strrchr(addr_arg, ':');
        if (!colon || (size_t)(colon - addr_arg) >= sizeof host)
            return -1;
        memcpy(host, addr_arg, (size_t)(colon - addr_arg));
        host[colon - addr_arg] = 0;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
            return -1;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
            goto fail;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

static void record(double secs)
{
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 16;
        lat = realloc(lat, caplat * sizeof *lat);
        if (!lat)
            exit(1);
    }
    double us = secs * 1e6;
    lat[nlat++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

/* (Re)start the request on c: write as much as the socket takes. */
static int send_more(struct conn *c)
{
    while (c->sent < req_len) {
        ssize_t n = write(c->fd, req + c->sent, req_len - c->sent);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->sent += (size_t)n;
    }
    struct epoll_event ev = {.events = EPOLLIN | (c->sent < req_len ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

static int reopen(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->have = 0;
    c->sent = 0;
    c->checked = 0;
    c->found = 0;
    c->fd = open_conn();
    if (c->fd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->started = now();
    return send_more(c);
}

/* Parse complete records; returns 1 when END_REQUEST was seen, -1 on a
 * protocol error, 0 when more bytes are needed. */
static int parse(struct conn *c)
{
    size_t off = 0;
    int done = 0;
    while (c->have - off >= 8) {
        unsigned char *h = c->in + off;
        size_t clen = ((size_t)h[4] << 8) | h[5], total = 8 + clen + h[6];
        if (h[0] != 1)
            return -1;
        if (c->have - off < total)
            break;
        if (h[1] == STDOUT && !c->checked && expect[0] && !c->found && memmem(h + 8, clen, expect, strlen(expect)))
            c->found = 1;
        else if (h[1] == END_REQUEST) {
            done = 1;
            if (clen >= 5 && h[8 + 4] != 0) /* protocolStatus */
                errors++;
            off += total;
            break;
        }
        off += total;
    }
    memmove(c->in, c->in + off, c->have - off);
    c->have -= off;
    return done;
}

static int cmp32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (nlat == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(nlat - 1) + 0.5);
    return lat[i] / 1000.0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s unix:/path|IP:PORT CONNS SECONDS EXPECT [NAME=VALUE ...]\n", argv[0]);
        return 2;
    }
    addr_arg = argv[1];
    int nconn = atoi(argv[2]);
    double secs = atof(argv[3]);
    expect = argv[4];
    build_request(argc - 5, argv + 5);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (!conns)
        return 1;
    double start = now(), end = start + secs;
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = -1;
        if (reopen(&conns[i]) != 0) {
            fprintf(stderr, "fcgiload: cannot connect to %s: %s\n", addr_arg, strerror(errno));
            return 1;
        }
    }
    struct epoll_event evs[256];
    double t = start;
    while (t < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        t = now();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT && c->sent < req_len && send_more(c) != 0) {
                errors++;
                reconnects++;
                if (reopen(c) != 0)
                    goto out;
                continue;
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            for (;;) {
                ssize_t r = read(c->fd, c->in + c->have, sizeof c->in - c->have);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0) {
                    /* closed: an error unless between requests */
                    if (c->sent > 0 || c->have > 0)
                        errors++;
                    reconnects++;
                    if (reopen(c) != 0)
                        goto out;
                    break;
                }
                c->have += (size_t)r;
                int done = parse(c);
                if (done < 0) {
                    errors++;
                    reconnects++;
                    if (reopen(c) != 0)
                        goto out;
                    break;
                }
                if (done) {
                    if (!c->checked && expect[0]) {
                        if (!c->found)
                            bad_content++;
                        c->checked = 1;
                    }
                    if (t < end)
                        record(t - c->started);
                    c->sent = 0;
                    c->started = t;
                    if (send_more(c) != 0) {
                        errors++;
                        reconnects++;
                        if (reopen(c) != 0)
                            goto out;
                    }
                    break;
                }
                if (c->have == sizeof c->in) { /* never: records are < 64 KiB + 8 */
                    errors++;
                    break;
                }
            }
        }
    }
out:;
    double elapsed = now() - start;
    qsort(lat, nlat, sizeof *lat, cmp32);
    printf("{\"addr\":\"%s\",\"conns\":%d,\"requests\":%zu,\"errors\":%ld,\"bad_content\":%ld,"
           "\"reconnects\":%ld,\"seconds\":%.3f,\"per_sec\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
           "\"p99_ms\":%.3f}\n",
           addr_arg, nconn, nlat, errors, bad_content, reconnects, elapsed, nlat / elapsed, pct(50), pct(90),
           pct(99));
    return nlat == 0;
}
