/* tests/lib/pgserver.h: one throwaway PostgreSQL server per test binary, started by
 * tests/lib/pg_server.sh in a temp directory (as `nobody` when the tests run as root) and stopped
 * at the end. Tests that need it skip, saying why, when it could not start. */
#ifndef TEST_PGSERVER_H
#define TEST_PGSERVER_H

extern char pg_dir[64];   /* the server's directory (its Unix socket is in it) */
extern char pg_url[256];  /* its postgresql:// URL; "" when no server runs */
extern char pg_skip[300]; /* why not, when pg_url is "" */

/* cmocka group setup and teardown: start and stop the server. Return 0 always: a server that
 * cannot start leaves pg_url empty and the tests that need it skip. */
int pg_server_start(void **state);
int pg_server_stop(void **state);
/* Runs sql on the server on a connection of its own; prints the error when it fails. */
void pg_admin(const char *sql);

#endif
