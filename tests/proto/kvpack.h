/* tests/proto/kvpack.h: test messages built from keys and already-packed values, in the
 * test buffer tb (test_proto.c and test_proto_decode.c). Include after harness.h and
 * proto/proto.h; register the tests with setup_buf / teardown_buf. */
#ifndef TESTS_PROTO_KVPACK_H
#define TESTS_PROTO_KVPACK_H

#define B(...) ((const uint8_t[]){__VA_ARGS__})

typedef struct kv {
    const char *key;
    const uint8_t *val;
    size_t n;
} kv_t;
#define KV(k, ...) {k, B(__VA_ARGS__), sizeof((const uint8_t[]){__VA_ARGS__})}

static proto_buf_t tb;

/* tb := a map of the n pairs, in order. */
static inline void pack_kvs(const kv_t *kvs, size_t n) {
    proto_buf_reset(&tb);
    msgpack_pack_map(&tb.pk, n);
    for (size_t i = 0; i < n; i++) {
        proto_pack_cstr(&tb, kvs[i].key);
        proto_buf_raw(&tb, (proto_raw_t){kvs[i].val, kvs[i].n});
    }
}
#define PACK(...) pack_kvs((const kv_t[]){__VA_ARGS__}, \
                           sizeof((const kv_t[]){__VA_ARGS__}) / sizeof(kv_t))

#define V1 KV("v", 1)
#define T(len, ...) KV("type", 0xa0 | len, __VA_ARGS__)
#define TQUERY T(5, 'q', 'u', 'e', 'r', 'y')
#define AGENT_ECHO KV("agent", 0xa4, 'e', 'c', 'h', 'o')

static inline int setup_buf(void **state) {
    (void)state;
    proto_buf_init(&tb);
    return 0;
}

static inline int teardown_buf(void **state) {
    (void)state;
    proto_buf_free(&tb);
    return 0;
}

#endif
