// The cluster measurements `pc` (../shared/loadgen) cannot make, measured
// the way pc measures (epoll, one sender thread, /proc CPU ticks):
//   cluster_pc fanout PORTS NCLIENTS NLINES LINELEN PIDS
//       PORTS and PIDS are comma lists (one per node): client i connects to
//       PORTS[i % n]; client 0 (on the first node) sends NLINES lines of
//       LINELEN bytes; every client must receive every line. CPU is summed
//       over PIDS. With one port and one pid it is exactly `pc fanout`.
//   cluster_pc leave ADMINPORT NODE PID CHATPORT
//       holds one client of NODE (its chat port CHATPORT), waits until the
//       console at ADMINPORT (another node's) shows NODE in `nodes` and its
//       client in `list`, sends SIGKILL to PID (the node), then polls both
//       every 5 ms: how long until NODE is gone from each.
// build: gcc -O2 -pthread -o cluster_pc bench/cluster_pc.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static int connect_to(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (s < 0) return -errno;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (connect(s, (void *)&a, sizeof a)) { int e = errno; close(s); return -e; }
    return s;
}
static void rcvtimeo(int s, double secs) {
    struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (time_t)secs) * 1e6)};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}
struct rd { int fd, len; char buf[1 << 16]; };
// >=0: line length (copied, NUL-terminated, without '\n'); -1 EOF; -2 timeout; -3 other error
static int read_line(struct rd *r, char *out, int cap) {
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl) {
            int n = nl - r->buf, m = n < cap - 1 ? n : cap - 1;
            memcpy(out, r->buf, m);
            out[m] = 0;
            memmove(r->buf, nl + 1, r->len - n - 1);
            r->len -= n + 1;
            return m;
        }
        if (r->len == (int)sizeof r->buf) r->len = 0;
        ssize_t k = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (k == 0) return -1;
        if (k < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? -2 : -3;
        r->len += k;
    }
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double pct(double *v, long n, double q) {
    if (!n) return 0;
    long i = (long)(n * q);
    return v[i >= n ? n - 1 : i];
}
static long cpu_ticks(int pid) {
    char p[64], b[4096];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = 0;
    char *s = strrchr(b, ')');
    long ut = 0, st = 0;
    if (s) sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st);
    return ut + st;
}
// A comma list of integers into v (at most cap); returns how many.
static int parse_list(const char *s, int *v, int cap) {
    int n = 0;
    while (*s && n < cap) {
        v[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c) break;
        s = c + 1;
    }
    return n;
}
static long cpu_all(const int *pids, int n) {
    long t = 0;
    for (int i = 0; i < n; i++) t += cpu_ticks(pids[i]);
    return t;
}

/* ---------------- fanout ---------------- */
struct sender { int fd, nlines, len; double t_done; };
static void *sender_thr(void *p) {
    struct sender *s = p;
    char *line = malloc(s->len);
    for (int i = 0; i < s->nlines; i++) {
        memset(line, 'a' + i % 26, s->len);
        int h = snprintf(line, s->len, "s%06d ", i);
        line[h] = '.';
        line[s->len - 1] = '\n';
        int off = 0;
        while (off < s->len) {
            ssize_t k = send(s->fd, line + off, s->len - off, MSG_NOSIGNAL);
            if (k > 0) { off += k; continue; }
            if (k < 0 && errno == EAGAIN) { struct pollfd pf = {s->fd, POLLOUT, 0}; poll(&pf, 1, 1000); continue; }
            fprintf(stderr, "sender error %d\n", errno);
            return NULL;
        }
    }
    s->t_done = now();
    return NULL;
}
static int fanout(char **argv) {
    int ports[16], pids[16];
    int np = parse_list(argv[2], ports, 16), n = atoi(argv[3]), nlines = atoi(argv[4]), len = atoi(argv[5]);
    int npid = parse_list(argv[6], pids, 16);
    if (np == 0 || n <= 0 || nlines <= 0 || len < 16) { fprintf(stderr, "bad fanout arguments\n"); return 2; }
    int *fd = calloc(n, sizeof(int)), *eof = calloc(n, sizeof(int));
    long *nl = calloc(n, sizeof(long)), *bytes = calloc(n, sizeof(long));
    double *tdone = calloc(n, sizeof(double));
    struct rd *r = malloc(sizeof *r);
    char line[512], tok[512] = "";
    double tc = now();
    for (int i = 0; i < n; i++) { // one at a time: connect, read the greeting, next
        fd[i] = connect_to(ports[i % np]);
        if (fd[i] < 0) { printf("ERR connect %d at %d\n", -fd[i], i); return 1; }
        rcvtimeo(fd[i], 5);
        r->fd = fd[i]; r->len = 0;
        if (read_line(r, line, sizeof line) < 0) { printf("ERR greeting %d\n", i); return 1; }
        if (r->len) { printf("ERR extra bytes after greeting %d\n", i); return 1; }
        if (i == 0) { char *sp = strchr(line, ' '); snprintf(tok, sizeof tok, "%s", sp ? sp + 1 : line); }
        fcntl(fd[i], F_SETFL, O_NONBLOCK);
    }
    double t_conn = now() - tc;
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev);
    }
    // Presence of the last connects reaches the other nodes meanwhile
    // (nothing is sent to clients for it).
    usleep(500000);
    long expect_bytes = (long)nlines * (strlen(tok) + 2 + len); // "<id>: " + line
    long c0 = cpu_all(pids, npid);
    double t0 = now();
    struct sender s = {fd[0], nlines, len, 0};
    pthread_t st;
    pthread_create(&st, NULL, sender_thr, &s);
    int done = 0, evicted = 0;
    static char buf[1 << 16];
    struct epoll_event evs[256];
    double deadline = t0 + 120;
    while (done + evicted < n && now() < deadline) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < k; e++) {
            int i = evs[e].data.u32;
            for (;;) {
                ssize_t m = recv(fd[i], buf, sizeof buf, 0);
                if (m > 0) {
                    bytes[i] += m;
                    for (char *q = buf; (q = memchr(q, '\n', buf + m - q)); q++) nl[i]++;
                    if (nl[i] >= nlines && !tdone[i]) { tdone[i] = now(); done++; }
                    continue;
                }
                if (m == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                    if (!eof[i]) { eof[i] = m == 0 ? 1 : 2; if (!tdone[i]) evicted++; }
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd[i], NULL);
                }
                break;
            }
        }
    }
    double t_all = now();
    long c1 = cpu_all(pids, npid);
    pthread_join(st, NULL);
    long wrong = 0, missing = 0;
    for (int i = 0; i < n; i++) { if (bytes[i] != expect_bytes) wrong++; missing += nlines > nl[i] ? nlines - nl[i] : 0; }
    double *td = malloc(n * sizeof(double));
    int nd = 0;
    for (int i = 0; i < n; i++) if (tdone[i]) td[nd++] = tdone[i] - t0;
    qsort(td, nd, sizeof(double), cmpd);
    long hz = sysconf(_SC_CLK_TCK);
    double deliv = (double)n * nlines - missing;
    printf("nodes=%d clients=%d lines=%d len=%d connect_s=%.3f all_received_s=%.4f sender_done_s=%.4f "
           "client_done_p50_s=%.4f client_done_p99_s=%.4f delivered=%.0f msgs_per_s=%.0f server_cpu_s=%.2f "
           "cpu_us_per_msg=%.3f complete=%d evicted_or_eof=%d missing_lines=%ld clients_wrong_bytes=%ld\n",
           np, n, nlines, len, t_conn, t_all - t0, s.t_done - t0, pct(td, nd, .5), pct(td, nd, .99), deliv,
           deliv / (t_all - t0), (double)(c1 - c0) / hz, (double)(c1 - c0) / hz / deliv * 1e6, done, evicted,
           missing, wrong);
    for (int i = 0; i < n; i++) close(fd[i]);
    return missing || wrong ? 1 : 0;
}

/* ---------------- leave ---------------- */
// Sends `cmd` and reads the answer up to "."; returns 1 if a line starts
// with `prefix`, 0 if none does, -1 on a console failure.
static int answer_has(struct rd *r, const char *cmd, const char *prefix) {
    if (send(r->fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0) return -1;
    char line[1024];
    int found = 0;
    for (;;) {
        int m = read_line(r, line, sizeof line);
        if (m < 0) return -1;
        if (!strcmp(line, ".")) return found;
        if (!strncmp(line, "error", 5)) return -1;
        if (!strncmp(line, prefix, strlen(prefix))) found = 1;
    }
}
static int leave(char **argv) {
    int admin = atoi(argv[2]), pid = atoi(argv[4]);
    const char *node = argv[3];
    char in_nodes[64], in_list[64];
    snprintf(in_nodes, sizeof in_nodes, "%s ", node);
    snprintf(in_list, sizeof in_list, "%s/", node);
    struct rd *r = malloc(sizeof *r);
    r->fd = connect_to(admin);
    r->len = 0;
    if (r->fd < 0) { printf("ERR admin connect %d\n", -r->fd); return 1; }
    rcvtimeo(r->fd, 5);
    int c = connect_to(atoi(argv[5]));
    if (c < 0) { printf("ERR connect to %s: %d\n", node, -c); return 1; }
    double ready_by = now() + 10;
    while (answer_has(r, "nodes\n", in_nodes) != 1 || answer_has(r, "list\n", in_list) != 1) {
        if (now() > ready_by) { printf("ERR %s or its client not in `nodes`/`list` within 10 s\n", node); return 1; }
        usleep(10000);
    }
    double t0 = now(), t_nodes = 0, t_list = 0;
    if (kill(pid, SIGKILL)) { printf("ERR kill %d: %d\n", pid, errno); return 1; }
    while ((!t_nodes || !t_list) && now() - t0 < 30) {
        if (!t_nodes) {
            int h = answer_has(r, "nodes\n", in_nodes);
            if (h < 0) { printf("ERR console during the poll\n"); return 1; }
            if (!h) t_nodes = now();
        }
        if (!t_list) {
            int h = answer_has(r, "list\n", in_list);
            if (h < 0) { printf("ERR console during the poll\n"); return 1; }
            if (!h) t_list = now();
        }
        usleep(5000);
    }
    printf("leave_nodes_ms=%.0f leave_list_ms=%.0f\n", t_nodes ? (t_nodes - t0) * 1e3 : -1, t_list ? (t_list - t0) * 1e3 : -1);
    close(c);
    return t_nodes && t_list ? 0 : 1;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 7 && !strcmp(argv[1], "fanout")) return fanout(argv);
    if (argc >= 6 && !strcmp(argv[1], "leave")) return leave(argv);
    fprintf(stderr, "usage: cluster_pc fanout PORTS NCLIENTS NLINES LINELEN PIDS | leave ADMINPORT NODE PID CHATPORT\n");
    return 2;
}
