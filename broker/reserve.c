/* broker/reserve.c: room kept on the disk of the --sessions file. When that disk fills up,
 * every SQLite write fails, session.delete (the one request that could make room) included.
 * So the broker keeps a file of --sessions-reserve-bytes beside it (FILE-reserve, allocated
 * at start); a delete that fails for a full disk frees it and is tried again, and the next
 * delete or start takes the room back when the disk has it. */
#include "broker.h"
#include "pg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct brk_reserve {
    char path[BRK_PATH_MAX + 16];
    bool held; /* the file is there, whole */
};

/* Allocates the file; false (and no file left) when the disk has no room for it. */
static bool reserve_make(brk_t *b, int *err) {
    struct brk_reserve *r = b->reserve;
    int fd = open(r->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        *err = errno;
        return false;
    }
    *err = posix_fallocate(fd, 0, (off_t)b->cfg.sessions_reserve);
    close(fd);
    if (*err) unlink(r->path);
    r->held = *err == 0;
    return r->held;
}

void brk_reserve_open(brk_t *b) {
    const char *s = b->cfg.sessions;
    /* PostgreSQL (a URL) keeps its own disk: nothing of ours to reserve there */
    if (!s[0] || strcmp(s, ":memory:") == 0 || b->cfg.sessions_reserve == 0 ||
        brk_pg_is_url(s))
        return;
    struct brk_reserve *r = calloc(1, sizeof *r);
    if (!r) return; /* no reserve: a full disk then blocks deletes too, as without the flag */
    snprintf(r->path, sizeof r->path, "%s-reserve", s);
    b->reserve = r;
    int err;
    char path[300];
    base_log_str(path, sizeof path, r->path, strlen(r->path));
    if (reserve_make(b, &err))
        base_log(BASE_LOG_INFO, "sessions_reserve", "path=%s bytes=%llu", path,
                 (unsigned long long)b->cfg.sessions_reserve);
    else
        base_log(BASE_LOG_WARN, "sessions_reserve_failed",
                 "path=%s bytes=%llu error=\"%s\" "
                 "why=\"on a full disk session.delete will fail too\"",
                 path, (unsigned long long)b->cfg.sessions_reserve, strerror(err));
}

void brk_reserve_close(brk_t *b) {
    free(b->reserve);
    b->reserve = NULL;
}

bool brk_reserve_release(brk_t *b) {
    struct brk_reserve *r = b->reserve;
    if (!r || !r->held) return false;
    unlink(r->path);
    r->held = false;
    base_log(BASE_LOG_ERROR, "disk_full",
             "bytes_freed=%llu why=\"the disk of the session file "
             "is full: its reserve is freed so that session.delete can make room; free disk "
             "space (the reserve comes back by itself)\"",
             (unsigned long long)b->cfg.sessions_reserve);
    return true;
}

void brk_reserve_refill(brk_t *b) {
    struct brk_reserve *r = b->reserve;
    int err;
    if (r && !r->held && reserve_make(b, &err))
        base_log(BASE_LOG_INFO, "sessions_reserve", "bytes=%llu why=\"made again\"",
                 (unsigned long long)b->cfg.sessions_reserve);
}
