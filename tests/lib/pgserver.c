/* tests/lib/pgserver.c: the throwaway PostgreSQL server of pgserver.h. */
#include "pgserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "harness.h"

char pg_dir[64], pg_url[256], pg_skip[300];

static void quiet(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

/* Runs sql on the test server on a connection of its own. */
void pg_admin(const char *sql) {
    PGconn *c = PQconnectdb(pg_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("%s: %s\n", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

int pg_server_start(void **state) {
    (void)state;
    snprintf(pg_dir, sizeof pg_dir, "/tmp/actorbus_pg.XXXXXX");
    if (!mkdtemp(pg_dir)) {
        snprintf(pg_skip, sizeof pg_skip, "mkdtemp failed");
        return 0;
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "%s start %s 2>%s.err", PG_SERVER, pg_dir, pg_dir);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(pg_url, sizeof pg_url, p)) pg_url[0] = '\0';
    int rc = p ? pclose(p) : -1;
    pg_url[strcspn(pg_url, "\n")] = '\0';
    if (rc != 0 || !pg_url[0]) {
        char err_path[80], why[200] = "";
        snprintf(err_path, sizeof err_path, "%s.err", pg_dir);
        FILE *e = fopen(err_path, "r");
        if (e && fgets(why, sizeof why, e)) why[strcspn(why, "\n")] = '\0';
        if (e) fclose(e);
        snprintf(pg_skip, sizeof pg_skip, "no PostgreSQL server for this run: %s",
                 why[0] ? why : "tests/lib/pg_server.sh failed");
        pg_url[0] = '\0';
    }
    char err_path[80];
    snprintf(err_path, sizeof err_path, "%s.err", pg_dir);
    unlink(err_path);
    return 0;
}

int pg_server_stop(void **state) {
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "%s stop %s", PG_SERVER, pg_dir);
    if (system(cmd) != 0) print_error("pg_server.sh stop failed\n");
    return 0;
}

