#define _GNU_SOURCE
// The bare floor's echo (../shared/loadgen/floor.c) on N threads: each thread has its own
// SO_REUSEPORT listener and epoll, nothing shared. It answers one question: how much faster
// can ANY server run the churn cycle with 2 threads than with 1 on this machine, beside the
// load client on the same cores? (bench/loadgen.sh compares tether's 2 shards / 1 shard with
// this floor's 2 threads / 1 thread.) Chat port only: greets "hello #<fd>.0\n", echoes,
// closes on EOF/error.
// build: gcc -O2 -pthread -o floor-threads floor_threads.c ; run: ./floor-threads PORT NTHREADS
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
static int port;
static int lsn(void) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (bind(s, (void *)&a, sizeof a) || listen(s, 1024)) { perror("listen"); exit(1); }
    return s;
}
static void *run(void *arg) {
    int ls = (int)(long)arg, ep = epoll_create1(0), one = 1;
    struct epoll_event ev = {.events = EPOLLIN}, evs[256];
    ev.data.fd = ls; epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    char buf[65536];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    int k = snprintf(buf, sizeof buf, "hello #%d.0\n", c);
                    (void)!write(c, buf, k);
                    ev.data.fd = c; epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) { close(fd); continue; }
            (void)!write(fd, buf, r);
        }
    }
    return NULL;
}
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s PORT NTHREADS\n", argv[0]); return 2; }
    port = atoi(argv[1]);
    int n = atoi(argv[2]);
    if (n < 1) n = 1;
    // Every listener is bound before any thread accepts: no connection waits on a missing one.
    int ls[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) ls[i] = lsn();
    pthread_t th;
    for (int i = 1; i < n; i++) pthread_create(&th, NULL, run, (void *)(long)ls[i]);
    run((void *)(long)ls[0]);
}
