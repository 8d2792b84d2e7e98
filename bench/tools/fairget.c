/* A round-robin HTTP/1.1 download client: latency of large responses as a
 * reader that shares its attention fairly sees them.
 *
 *   fairget PORT PATH CONNS SECONDS
 *
 * CONNS keep-alive connections to 127.0.0.1:PORT each GET PATH again as soon
 * as the previous response is complete. Every round of the epoll loop reads
 * at most 64 KiB from each readable socket, then moves on. wrk instead reads
 * a socket for as long as data waits in it (8 KiB at a time), so with large
 * files a server that refills sockets as fast as wrk drains them has one
 * response read to its end while the others wait: a long p99 tail that
 * belongs to the client. Responses must carry Content-Length (static files
 * do). Prints one line: responses per second and latency percentiles in
 * milliseconds. Single-threaded. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE (64 * 1024)
#define HEAD_MAX 4096

struct conn {
    int fd;
    int in_head;
    size_t head_len;
    char head[HEAD_MAX];
    long long body_left;
    double started;
};

static char request[1024];
static size_t request_len;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void send_request(struct conn *c) {
    c->in_head = 1;
    c->head_len = 0;
    c->started = now();
    if (write(c->fd, request, request_len) != (ssize_t)request_len) {
        perror("fairget: write");
        exit(1);
    }
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Consume `len` bytes read from `c`; returns 1 when a response completed. */
static int consume(struct conn *c, const char *data, size_t len) {
    if (c->in_head) {
        size_t room = HEAD_MAX - 1 - c->head_len;
        size_t take = len < room ? len : room;
        memcpy(c->head + c->head_len, data, take);
        c->head_len += take;
        c->head[c->head_len] = 0;
        char *end = strstr(c->head, "\r\n\r\n");
        if (!end) {
            if (c->head_len == HEAD_MAX - 1) {
                fprintf(stderr, "fairget: response head too large\n");
                exit(1);
            }
            return 0;
        }
        if (strncmp(c->head, "HTTP/1.1 200", 12) != 0) {
            fprintf(stderr, "fairget: unexpected response: %.40s\n", c->head);
            exit(1);
        }
        char *length = strcasestr(c->head, "\r\ncontent-length:");
        if (!length) {
            fprintf(stderr, "fairget: response without Content-Length\n");
            exit(1);
        }
        c->body_left = atoll(length + 17);
        size_t head_bytes_here = (size_t)(end + 4 - c->head) - (c->head_len - take);
        c->in_head = 0;
        len -= head_bytes_here;
    }
    c->body_left -= (long long)len;
    return c->body_left <= 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: fairget PORT PATH CONNS SECONDS\n");
        return 2;
    }
    int port = atoi(argv[1]), conns = atoi(argv[3]);
    double seconds = atof(argv[4]);
    if (port <= 0 || conns <= 0 || seconds <= 0) {
        fprintf(stderr, "fairget: PORT, CONNS and SECONDS must be positive\n");
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    if (request_len >= sizeof request) {
        fprintf(stderr, "fairget: path too long\n");
        return 2;
    }
    int ep = epoll_create1(0);
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    for (int i = 0; i < conns; i++) {
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (cs[i].fd < 0 || connect(cs[i].fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
            perror("fairget: connect");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        send_request(&cs[i]);
    }
    size_t cap = 1 << 20, count = 0;
    double *latency = malloc(cap * sizeof *latency);
    static char buf[READ_SIZE];
    struct epoll_event events[1024];
    double deadline = now() + seconds;
    while (now() < deadline) {
        int ready = epoll_wait(ep, events, 1024, 100);
        for (int i = 0; i < ready; i++) {
            struct conn *c = events[i].data.ptr;
            ssize_t n = read(c->fd, buf, sizeof buf);
            if (n <= 0) {
                fprintf(stderr, "fairget: connection closed by the server\n");
                return 1;
            }
            if (consume(c, buf, (size_t)n)) {
                if (count < cap) latency[count++] = now() - c->started;
                send_request(c);
            }
        }
    }
    if (count == 0) {
        fprintf(stderr, "fairget: no response completed\n");
        return 1;
    }
    qsort(latency, count, sizeof *latency, by_value);
    printf("responses/s %.0f p50 %.1f p90 %.1f p99 %.1f max %.1f ms (%zu responses)\n",
           count / seconds, latency[count / 2] * 1e3, latency[count * 9 / 10] * 1e3,
           latency[count * 99 / 100] * 1e3, latency[count - 1] * 1e3, count);
    return 0;
}
