/* bench/agents/httpload.c: how many requests per second bench/agents/modelsrv answers. Each of
 * --connections threads keeps one keep-alive connection and sends chat requests one after
 * another for --seconds (alternating "user last" and "tool last"), then prints one JSON line.
 * It proves the model server is not what limits the agent benchmark. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256

static int port;
static double seconds = 2;
static atomic_long total, failed;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *const bodies[2] = {
    "{\"model\":\"bench\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}]}",
    "{\"model\":\"bench\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"{}\"}]}"};

/* Reads one response (head + Content-Length body). Returns false on error. */
static bool read_response(int fd, char *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        ssize_t k = read(fd, buf + len, cap - len - 1);
        if (k <= 0) return false;
        len += (size_t)k;
        buf[len] = 0;
        char *eoh = strstr(buf, "\r\n\r\n");
        if (!eoh) continue;
        char *cl = strcasestr(buf, "Content-Length:");
        if (!cl || cl > eoh || strncmp(buf, "HTTP/1.1 200", 12) != 0) return false;
        size_t want = (size_t)(eoh + 4 - buf) + strtoul(cl + 15, NULL, 10);
        if (want >= cap) return false;
        if (len >= want) return len == want; /* one request in flight: nothing after it */
    }
}

static void *client(void *arg) {
    (void)arg;
    char req[1024], buf[16384];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct timeval tv = {5, 0};
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        atomic_fetch_add(&failed, 1);
        return NULL;
    }
    double stop = now_s() + seconds;
    long done = 0;
    while (now_s() < stop) {
        const char *b = bodies[done & 1];
        int n = snprintf(req, sizeof req, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                         "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(b), b);
        if (write(fd, req, (size_t)n) != n || !read_response(fd, buf, sizeof buf)) {
            atomic_fetch_add(&failed, 1);
            break;
        }
        done++;
    }
    atomic_fetch_add(&total, done);
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    int conns = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--connections") == 0) conns = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0) seconds = atof(argv[i + 1]);
    }
    if (port <= 0 || conns < 1 || conns > MAX_CONNS || seconds <= 0 || seconds > 60) {
        fprintf(stderr, "usage: httpload --port P [--connections 1..%d] [--seconds S<=60]\n",
                MAX_CONNS);
        return 2;
    }
    pthread_t t[MAX_CONNS];
    double t0 = now_s();
    for (int i = 0; i < conns; i++) pthread_create(&t[i], NULL, client, NULL);
    for (int i = 0; i < conns; i++) pthread_join(t[i], NULL);
    double el = now_s() - t0;
    printf("{\"requests\": %ld, \"seconds\": %.3f, \"rps\": %.0f, \"failed\": %ld, "
           "\"connections\": %d}\n", (long)total, el, total / el, (long)failed, conns);
    return failed ? 1 : 0;
}
