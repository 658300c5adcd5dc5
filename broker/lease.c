/* broker/lease.c: the broker pair (--pair). Two brokers share one PostgreSQL store; the one
 * holding the session-level advisory lock LEASE_KEY on its own connection is the active one.
 * The other (the standby) waits in brk_lease_acquire before it opens anything: it binds no
 * socket until it holds the lock. PostgreSQL releases the lock when the holder's connection
 * ends, at once when the process dies (its socket closes), after the server's TCP keepalive
 * when the network between them fails. Fencing: the active posts `SELECT 1` on that connection
 * every check period and exits (code 3) when the connection is lost or a check is unanswered
 * for --fence-ms, so an active cut off from the store stops serving within fence_ms + one
 * loop wake-up (1 s) or one store call (bounded by fence_ms in a pair), before the server
 * (keepalive 2 s idle + 3 probes of 1 s, and a 5 s bound on unacknowledged data, set on the
 * connection) gives the lock away. The row broker_lease says who holds it, since when, and
 * how many takeovers there were (actorctl status, /metrics). */
#include "broker.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg.h"

#define LEASE_KEY "4242000002"
#define OID_TEXT 25
#define OID_INT8 20

struct brk_lease {
    brk_pg_t pg;
    int64_t since_unix;   /* when this broker became active */
    uint64_t takeovers;   /* the row's count after this broker took the lease */
    int64_t next_check;   /* monotonic ms */
    int64_t sent_at;      /* the outstanding check's, 0 when none */
    char holder[BRK_ENDPOINT_MAX + 96];
};

static const char SETUP[] =
    "CREATE TABLE IF NOT EXISTS broker_lease (id int PRIMARY KEY, holder text NOT NULL,"
    " since_ms bigint NOT NULL, takeovers bigint NOT NULL DEFAULT 0)";
static const char TRY[] = "SELECT pg_try_advisory_lock(" LEASE_KEY ")";
static const char TAKE[] =
    "INSERT INTO broker_lease (id, holder, since_ms) VALUES (1, $1, $2) ON CONFLICT (id) DO"
    " UPDATE SET holder = excluded.holder, since_ms = excluded.since_ms,"
    " takeovers = broker_lease.takeovers + 1 RETURNING takeovers";
/* The server drops a connection it cannot reach after 2 + 3 x 1 s (TCP), after the active's
 * own fence (fence_ms + at most max(1 s, fence_ms): defaults 4 s): the lock is not handed
 * over while the old active may still serve. Keepalive probes only go out on an idle
 * connection: when the cut comes while the server's answer to a check is in flight, that
 * answer is retransmitted for the kernel's tcp_retries2 (about 15 minutes) and the lock stays
 * that long. tcp_user_timeout bounds that case to the same 5 s (PostgreSQL 12 and later). */
static const char KEEPALIVE[] =
    "SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1;"
    " SET tcp_keepalives_count = 3; SET tcp_user_timeout = 5000";

static int64_t check_period(const brk_t *b) {
    int64_t p = (int64_t)b->cfg.fence_ms / 4;
    if (p > (int64_t)b->cfg.heartbeat_ms) p = (int64_t)b->cfg.heartbeat_ms;
    return p > 10 ? p : 10;
}

/* One try. Returns: 1 held, 0 held by another. Errors: -EIO (why). */
static int try_lock(brk_lease_t *l, char *why, size_t cap) {
    PGresult *r[1];
    if (brk_pg_send_sql(&l->pg, TRY, 0, NULL, NULL)) {
        snprintf(why, cap, "%s", l->pg.last_error);
        return -EIO;
    }
    int rc = brk_pg_wait(&l->pg, r, 1, why, cap);
    if (rc == 1) brk_pg_result_error(r, 1, why, cap);
    int held = rc == 0 && PQntuples(r[0]) == 1 && PQgetvalue(r[0], 0, 0)[0] == 1;
    brk_pg_clear(r, 1);
    return rc ? -EIO : held;
}

/* Records the takeover in broker_lease. Returns: 0. Errors: -EIO (why). */
static int take(brk_lease_t *l, char *why, size_t cap) {
    static const Oid types[] = {OID_TEXT, OID_INT8};
    brk_pg_arg_t a[2];
    l->since_unix = base_unix_ms();
    brk_pg_text(&a[0], l->holder, strlen(l->holder));
    brk_pg_int(&a[1], l->since_unix);
    PGresult *r[1];
    if (brk_pg_send_sql(&l->pg, TAKE, 2, types, a)) {
        snprintf(why, cap, "%s", l->pg.last_error);
        return -EIO;
    }
    int rc = brk_pg_wait(&l->pg, r, 1, why, cap);
    if (rc == 1) brk_pg_result_error(r, 1, why, cap);
    if (rc == 0 && PQntuples(r[0]) == 1) l->takeovers = (uint64_t)brk_pg_get_int(r[0], 0, 0);
    brk_pg_clear(r, 1);
    return rc ? -EIO : 0;
}

/* Connects (again) and sets the connection up. Returns: 0. Errors: -EIO (why). */
static int connect_lease(brk_t *b, brk_lease_t *l, char *why, size_t cap) {
    if (brk_pg_ok(&l->pg)) return 0;
    int rc = l->pg.url ? brk_pg_reopen(&l->pg, 0, why, cap)
                       : brk_pg_open(&l->pg, b->cfg.sessions, BRK_PG_TIMEOUT_MS, why, cap);
    if (rc == 0) rc = brk_pg_exec(&l->pg, KEEPALIVE, why, cap);
    if (rc == 0) rc = brk_pg_exec(&l->pg, SETUP, why, cap);
    return rc ? -EIO : 0;
}

/* Waits up to ms for a signal on the broker's signal pipe. Returns: true when one came. */
static bool signalled(brk_t *b, int64_t ms) {
    struct pollfd p = {.fd = b->sig_fd, .events = POLLIN};
    if (poll(&p, 1, (int)ms) <= 0) return false;
    char c;
    return read(b->sig_fd, &c, 1) == 1;
}

int brk_lease_acquire(brk_t *b) {
    if (!brk_pg_is_url(b->cfg.sessions)) {
        base_log(BASE_LOG_ERROR, "lease_failed",
                 "why=\"--pair needs --sessions postgresql://...\"");
        return -EINVAL;
    }
    brk_lease_t *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    snprintf(l->holder, sizeof l->holder, "%s pid %d clients %s", host, (int)getpid(),
             b->cfg.clients_ep);
    b->lease = l;
    bool said = false;
    char why[240] = "", last[240] = "", q[300];
    for (;;) {
        int rc = connect_lease(b, l, why, sizeof why);
        if (rc == 0) rc = try_lock(l, why, sizeof why);
        if (rc == 1 && take(l, why, sizeof why) == 0) break;
        if (rc < 0) {
            /* the store down: said once per distinct error, not every poll */
            if (strcmp(why, last) != 0)
                base_log(BASE_LOG_WARN, "lease_store_failed", "error=%s",
                         base_log_str(q, sizeof q, why, strlen(why)));
            snprintf(last, sizeof last, "%s", why);
            brk_pg_close(&l->pg);
        } else if (!said) {
            base_log(BASE_LOG_INFO, "standby", "poll_ms=%llu holder=%s",
                     (unsigned long long)b->cfg.lease_poll_ms,
                     base_log_str(q, sizeof q, l->holder, strlen(l->holder)));
            said = true;
        }
        if (signalled(b, (int64_t)b->cfg.lease_poll_ms)) return -EINTR;
    }
    base_log(BASE_LOG_INFO, "active", "since_ms=%lld takeovers=%llu fence_ms=%llu",
             (long long)l->since_unix, (unsigned long long)l->takeovers,
             (unsigned long long)b->cfg.fence_ms);
    l->next_check = base_mono_ms() + check_period(b);
    return 0;
}

/* Stops serving at once: the standby may hold the lease already. */
static void fence(brk_t *b, const char *why) {
    char q[300];
    const char *e = b->lease->pg.last_error;
    base_log(BASE_LOG_ERROR, "lease_lost", "why=\"%s\" error=%s action=exit", why,
             base_log_str(q, sizeof q, e, strlen(e)));
    _exit(3);
}

void brk_lease_tick(brk_t *b) {
    brk_lease_t *l = b->lease;
    if (!l || b->now < l->next_check) return;
    l->next_check = b->now + check_period(b);
    if (brk_pg_poll(&l->pg) != 0 || !brk_pg_ok(&l->pg)) fence(b, "store connection lost");
    if (l->sent_at && l->pg.pending == 0) l->sent_at = 0; /* answered */
    if (l->pg.failed) fence(b, "lease check failed");
    if (l->sent_at && b->now - l->sent_at > (int64_t)b->cfg.fence_ms)
        fence(b, "lease check unanswered");
    if (!l->sent_at) {
        if (brk_pg_send_sql(&l->pg, "SELECT 1", 0, NULL, NULL) || brk_pg_post(&l->pg, 1))
            fence(b, "store connection lost");
        l->sent_at = b->now;
    }
}

void brk_lease_close(brk_t *b) {
    if (!b->lease) return;
    brk_pg_free(&b->lease->pg); /* the lock goes with the connection */
    free(b->lease);
    b->lease = NULL;
}

void brk_lease_status(brk_t *b, proto_buf_t *o, int64_t start_unix) {
    proto_pack_cstr(o, "role");
    proto_pack_cstr(o, "active");
    proto_pack_cstr(o, "pair");
    if (b->lease) msgpack_pack_true(&o->pk);
    else msgpack_pack_false(&o->pk);
    proto_pack_cstr(o, "active_since_ms");
    msgpack_pack_int64(&o->pk, b->lease ? b->lease->since_unix : start_unix);
    proto_pack_cstr(o, "takeovers");
    msgpack_pack_uint64(&o->pk, b->lease ? b->lease->takeovers : 0);
    proto_pack_cstr(o, "active_broker");
    proto_pack_cstr(o, b->lease ? b->lease->holder : b->cfg.clients_ep);
}

uint64_t brk_lease_takeovers(const brk_t *b) { return b->lease ? b->lease->takeovers : 0; }
