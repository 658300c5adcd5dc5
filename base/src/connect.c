/* base/src/connect.c: base_connect_all (base/connect.h). */
#include "base/connect.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int base_connect_all(void *s, const char *list, char *failed, size_t cap) {
    int one = 1;
    if (strchr(list, ',')) zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        char ep[512];
        snprintf(ep, sizeof ep, "%.*s", (int)(n < sizeof ep ? n : sizeof ep - 1), p);
        int rc = n >= sizeof ep ? -ENAMETOOLONG : 0;
        if (!rc && n && zmq_connect(s, ep) != 0) rc = -errno;
        if (rc) {
            if (failed && cap) snprintf(failed, cap, "%s", ep);
            return rc;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}
