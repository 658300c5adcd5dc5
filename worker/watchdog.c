/* watchdog.c: the worker's watchdog and its liveness for a service manager. Tasks are
 * cooperative: one that spins or blocks in a system call holds the loop, and with it every
 * other job, heartbeat and answer. A ticker task stamps the time every watchdog_ms / 4; a
 * thread checks the stamp, and when it is older than watchdog_ms it signals the loop's thread,
 * whose handler names the task holding the loop, writes its stack and ends the process
 * (WRK_WATCHDOG_EXIT) for its supervisor to restart. Under systemd (NOTIFY_SOCKET) the same
 * ticker sends READY=1 and WATCHDOG=1, so a held loop also stops those. */
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

#define WD_SIGNAL SIGUSR2

struct wrk_watchdog {
    act_task_t *ticker;
    pthread_t thread;
    bool thread_on;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;        /* under mu */
    int64_t every_ms; /* the ticker's period */
    int notify_fd;    /* systemd's notify socket, -1 none */
    struct sockaddr_un notify_addr;
    socklen_t notify_len;
};

/* What the signal handler reads: plain globals, one watchdog per process. */
static _Atomic int64_t beat_ms;
static int64_t limit_ms;
static pthread_t loop_thread;

static void put(const char *s) {
    ssize_t n = write(STDERR_FILENO, s, strlen(s));
    (void)n;
}

/* On the loop's thread, inside the task that holds it. Only writes and _exit: the process
 * is ending, and whatever the task holds may be in any state. */
static void on_stuck(int sig) {
    (void)sig;
    act_task_t *t = act_current();
    char line[256];
    snprintf(line, sizeof line,
             "level=error event=watchdog task=%s held_ms=%lld "
             "why=\"a task did not yield for --watchdog-ms; exiting %d for a restart\"\n",
             t ? act_task_name(t) : "(loop)", (long long)(base_mono_ms() - atomic_load(&beat_ms)),
             WRK_WATCHDOG_EXIT);
    put(line);
    void *frames[48];
    int n = backtrace(frames, 48);
    put("watchdog: stack of the task holding the loop:\n");
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    _exit(WRK_WATCHDOG_EXIT);
}

/* Sleeps ms on cv unless told to stop. Returns: whether to stop. */
static bool wd_sleep(struct wrk_watchdog *wd, int64_t ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
    pthread_mutex_lock(&wd->mu);
    while (!wd->stop && pthread_cond_timedwait(&wd->cv, &wd->mu, &until) != ETIMEDOUT) {
    }
    bool stop = wd->stop;
    pthread_mutex_unlock(&wd->mu);
    return stop;
}

static void *watch(void *arg) {
    struct wrk_watchdog *wd = arg;
    int64_t period = wd->every_ms, last = base_mono_ms();
    while (!wd_sleep(wd, period)) {
        int64_t now = base_mono_ms();
        bool suspended = now - last > 2 * period + 1000; /* SIGSTOP, a suspended VM: the
                                                            ticker had no chance either */
        last = now;
        if (suspended) {
            atomic_store(&beat_ms, now);
            continue;
        }
        if (now - atomic_load(&beat_ms) > limit_ms) {
            pthread_kill(loop_thread, WD_SIGNAL);
            wd_sleep(wd, 5000); /* the handler exits; if the signal cannot land, exit here */
            if (wd->stop) break;
            put("level=error event=watchdog why=\"the loop did not take the signal\"\n");
            _exit(WRK_WATCHDOG_EXIT);
        }
    }
    return NULL;
}

static void notify(struct wrk_watchdog *wd, const char *what) {
    if (wd->notify_fd < 0) return;
    if (sendto(wd->notify_fd, what, strlen(what), MSG_NOSIGNAL, (struct sockaddr *)&wd->notify_addr,
               wd->notify_len) < 0)
        act_log(ACT_LOG_WARN, "sd_notify_failed", "what=%s error=\"%s\"", what, strerror(errno));
}

static int tick(void *arg, void **result) {
    (void)result;
    struct wrk_watchdog *wd = arg;
    for (;;) {
        atomic_store(&beat_ms, base_mono_ms());
        notify(wd, "WATCHDOG=1");
        if (act_sleep(wd->every_ms) != 0) return 0;
    }
}

/* systemd's notify socket and watchdog period, when it gave us one. Returns: the period to
 * send WATCHDOG=1 at (half systemd's), 0 when none asked. */
static int64_t notify_open(struct wrk_watchdog *wd) {
    const char *path = getenv("NOTIFY_SOCKET");
    wd->notify_fd = -1;
    if (!path || !*path || strlen(path) >= sizeof wd->notify_addr.sun_path) return 0;
    wd->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (wd->notify_fd < 0) return 0;
    wd->notify_addr.sun_family = AF_UNIX;
    memcpy(wd->notify_addr.sun_path, path, strlen(path));
    if (path[0] == '@') wd->notify_addr.sun_path[0] = 0; /* the abstract namespace */
    wd->notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    long long us = usec ? atoll(usec) : 0;
    if (pid && atoll(pid) != (long long)getpid()) us = 0; /* meant for another process */
    return us > 0 ? (us / 2000 > 0 ? us / 2000 : 1) : 0;
}

int wrk_watchdog_start(wrk_t *w) {
    struct wrk_watchdog *wd = calloc(1, sizeof *wd);
    if (!wd) return ACT_ENOMEM;
    int64_t sd_every = notify_open(wd);
    limit_ms = w->cfg.watchdog_ms;
    wd->every_ms = limit_ms > 0 ? (limit_ms / 4 > 0 ? limit_ms / 4 : 1) : 0;
    if (sd_every && (!wd->every_ms || sd_every < wd->every_ms)) wd->every_ms = sd_every;
    if (!wd->every_ms) { /* nothing to watch or tell */
        notify(wd, "READY=1");
        if (wd->notify_fd >= 0) close(wd->notify_fd);
        free(wd);
        return 0;
    }
    pthread_mutex_init(&wd->mu, NULL);
    pthread_cond_init(&wd->cv, NULL);
    atomic_store(&beat_ms, base_mono_ms());
    act_spawn_opts_t o = {.name = "watchdog"};
    int rc = act_spawn(tick, wd, &o, &wd->ticker);
    if (rc == 0 && limit_ms > 0) {
        void *frames[2];
        backtrace(frames, 2); /* loads the unwinder now, not inside the handler */
        loop_thread = pthread_self();
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stuck;
        sa.sa_flags = SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(WD_SIGNAL, &sa, NULL);
        if (pthread_create(&wd->thread, NULL, watch, wd) != 0)
            rc = ACT_EINVAL;
        else
            wd->thread_on = true;
    }
    w->wd = wd;
    if (rc) {
        wrk_watchdog_stop(w);
        return rc;
    }
    notify(wd, "READY=1");
    act_log(ACT_LOG_INFO, "watchdog", "watchdog_ms=%lld every_ms=%lld systemd=%d",
            (long long)limit_ms, (long long)wd->every_ms, wd->notify_fd >= 0);
    return 0;
}

void wrk_watchdog_stop(wrk_t *w) {
    struct wrk_watchdog *wd = w->wd;
    if (!wd) return;
    if (wd->thread_on) {
        pthread_mutex_lock(&wd->mu);
        wd->stop = true;
        pthread_cond_signal(&wd->cv);
        pthread_mutex_unlock(&wd->mu);
        pthread_join(wd->thread, NULL);
    }
    if (wd->ticker) {
        act_task_cancel(wd->ticker);
        act_join(wd->ticker, NULL, -1);
        act_task_release(&wd->ticker);
    }
    notify(wd, "STOPPING=1");
    if (wd->notify_fd >= 0) close(wd->notify_fd);
    pthread_mutex_destroy(&wd->mu);
    pthread_cond_destroy(&wd->cv);
    free(wd);
    w->wd = NULL;
}
