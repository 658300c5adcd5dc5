/* fuzz_decode.c: libFuzzer entry for the codec's untrusted-input paths. Each input is tried
 * as a message (proto_decode with the broker's default limits), as a msgpack value (to JSON
 * and back, which must reach a fixed point) and as JSON text. Any crash, sanitizer report or
 * broken property aborts. Run by tests/run.sh on a copy of corpus/decode. */
#include <stdio.h>
#include <stdlib.h>

#include "proto/proto.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                           \
        }                                                                      \
    } while (0)

static void check_error(int rc, const proto_error_t *e) {
    CHECK(rc == PROTO_EBAD || rc == PROTO_ETOOBIG || rc == PROTO_EVERSION);
    CHECK(e->code != NULL);
    CHECK(memchr(e->message, 0, sizeof e->message) != NULL);
}

static void fuzz_message(const uint8_t *data, size_t size) {
    proto_msg_t m;
    proto_error_t e;
    int rc = proto_decode(data, size, NULL, &m, &e);
    if (rc) {
        check_error(rc, &e);
        return;
    }
    CHECK(m.type > PROTO_UNKNOWN && m.type <= PROTO_TYPE_LAST);
    CHECK(m.body.p == data && m.body.n == size);
    size_t at = 0; /* a decoded message is a map: proto_map_next walks it to its end */
    proto_raw_t key, val;
    int more;
    while ((more = proto_map_next(m.body, &at, &key, &val)) == 1) CHECK(key.n > 0 && val.n > 0);
    CHECK(more == 0 && at == size);
    if (m.type == PROTO_READY) { /* the decoder promised every name is a string */
        size_t cur = 0;
        proto_str_t name;
        int n;
        while ((n = proto_agents_next(m.agents, &cur, &name)) == 1) CHECK(name.n > 0);
        CHECK(n == 0);
    }
    proto_buf_t json;
    proto_buf_init(&json);
    rc = proto_raw_to_json(m.body, &json);
    CHECK(rc == 0 || (rc == PROTO_EBAD && json.n == 0)); /* EBAD: keys nested in keys */
    proto_buf_free(&json);
}

/* msgpack -> JSON -> msgpack -> JSON -> msgpack: the two msgpack results must be equal. */
static void fuzz_value(const uint8_t *data, size_t size) {
    proto_limits_t lim = {size, 64, UINT32_MAX, 0}; /* ext becomes an object: leave room */
    proto_error_t e;
    proto_buf_t j1, m1, j2, m2;
    if (proto_validate(data, size, &lim, &e)) return;
    proto_buf_init(&j1), proto_buf_init(&m1), proto_buf_init(&j2), proto_buf_init(&m2);
    int rc = proto_raw_to_json((proto_raw_t){data, size}, &j1);
    CHECK(rc == 0 || (rc == PROTO_EBAD && j1.n == 0));
    if (rc) goto done;
    rc = proto_json_to_msgpack((const char *)j1.p, j1.n, &m1, &e);
    if (rc) fprintf(stderr, "json %.*s: %s\n", (int)(j1.n > 200 ? 200 : j1.n), j1.p, e.message);
    CHECK(rc == 0);
    proto_limits_t any = {SIZE_MAX, PROTO_MAX_DEPTH, UINT32_MAX, 0};
    CHECK(proto_validate(m1.p, m1.n, &any, &e) == 0);
    CHECK(proto_raw_to_json((proto_raw_t){m1.p, m1.n}, &j2) == 0);
    CHECK(proto_json_to_msgpack((const char *)j2.p, j2.n, &m2, &e) == 0);
    CHECK(m1.n == m2.n && memcmp(m1.p, m2.p, m1.n) == 0);
done:
    proto_buf_free(&j1), proto_buf_free(&m1), proto_buf_free(&j2), proto_buf_free(&m2);
}

static void fuzz_json(const uint8_t *data, size_t size) {
    proto_buf_t m, j;
    proto_error_t e;
    proto_buf_init(&m), proto_buf_init(&j);
    if (proto_json_to_msgpack((const char *)data, size, &m, &e) == 0) {
        proto_limits_t lim = {m.n, PROTO_MAX_DEPTH, UINT32_MAX, 0};
        CHECK(proto_validate(m.p, m.n, &lim, &e) == 0);
        CHECK(proto_raw_to_json((proto_raw_t){m.p, m.n}, &j) == 0);
    } else {
        CHECK(m.n == 0);
    }
    proto_buf_free(&m), proto_buf_free(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_message(data, size);
    fuzz_value(data, size);
    fuzz_json(data, size);
    return 0;
}
