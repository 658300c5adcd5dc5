/* proto/proto.h: the 1/ABP wire codec (proto/PROTOCOL.md). A validating, zero-copy decoder
 * for untrusted bytes and encoders for every message. Knows nothing of libactor, the broker
 * or the worker. Strings and raw values returned by the decoder point into the caller's
 * buffer: they live as long as it does. */
#ifndef PROTO_PROTO_H
#define PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

#define PROTO_VERSION 1
#define PROTO_MAX_DEPTH 128 /* hard cap on max_depth (the walkers keep a fixed stack) */
#define PROTO_MAX_NAME 128  /* bytes of an agent or worker name */

/* Codes returned by proto functions (negative, errno-style). */
enum {
    PROTO_EBAD = -22,      /* -EINVAL: not a valid message (err->code "bad_request") */
    PROTO_ETOOBIG = -90,   /* -EMSGSIZE: over a size limit ("too_large") */
    PROTO_EVERSION = -71,  /* -EPROTO: unknown protocol version ("unsupported_version") */
    PROTO_ENOMEM = -12,    /* -ENOMEM */
};

typedef struct proto_limits {
    size_t max_size;     /* whole message, bytes (default 1 MiB) */
    unsigned max_depth;  /* nesting of arrays and maps (default 32, at most PROTO_MAX_DEPTH) */
    uint32_t max_elems;  /* elements of one array or map (default 65536) */
    size_t max_id;       /* bytes of an id, as msgpack (default 256) */
} proto_limits_t;

void proto_limits_default(proto_limits_t *l);

/* What was wrong with a message: the wire error code and a message naming the field. */
typedef struct proto_error {
    const char *code;   /* "bad_request", "too_large", "unsupported_version" */
    char message[160];  /* e.g. "field 'agent' must be a string" */
} proto_error_t;

/* Checks that [buf, buf+len) holds exactly one msgpack object within the limits: every
 * length against the bytes that remain, depth, element counts and total size, before
 * anything is allocated (it allocates nothing). lim NULL: defaults; err may be NULL.
 * Returns: 0. Errors: PROTO_EBAD (malformed, truncated, trailing bytes), PROTO_ETOOBIG (over
 * max_size, max_depth or max_elems); err names the problem and its byte offset. */
int proto_validate(const uint8_t *buf, size_t len, const proto_limits_t *lim, proto_error_t *err);

typedef struct proto_str {
    const char *p; /* not NUL-terminated; points into the decoded buffer */
    size_t n;
} proto_str_t;

typedef struct proto_raw {
    const uint8_t *p; /* one msgpack object, verbatim; n == 0 when absent */
    size_t n;
} proto_raw_t;

/* A view of a C string (NULL gives n == 0), and comparison of a view with a C string. */
static inline proto_str_t proto_str_of(const char *s) {
    proto_str_t v = {s, s ? strlen(s) : 0};
    return v;
}
static inline bool proto_str_eq(proto_str_t a, const char *s) {
    size_t n = strlen(s);
    return a.n == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

typedef enum proto_type {
    PROTO_UNKNOWN = 0,
    PROTO_QUERY, PROTO_CANCEL, PROTO_PUBLISH, PROTO_STATUS, /* client -> broker (status both) */
    PROTO_EVENT, PROTO_RESULT, PROTO_ERROR,                 /* replies (and worker -> broker) */
    PROTO_READY, PROTO_WORK, PROTO_CREDIT,                  /* worker <-> broker */
    PROTO_HEARTBEAT, PROTO_DISCONNECT,
    PROTO_SESSION_GET, PROTO_SESSION_LIST, PROTO_SESSION_DELETE, /* client -> broker */
    PROTO_TASKS, PROTO_TASKS_REPLY,  /* a worker's task list: client -> broker -> worker */
    PROTO_BUDGET, PROTO_BUDGET_ACQUIRE, PROTO_BUDGET_GRANT,      /* the model budget */
    PROTO_BUDGET_DENY, PROTO_BUDGET_RELEASE, PROTO_BUDGET_CANCEL,
} proto_type_t;
#define PROTO_TYPE_LAST PROTO_BUDGET_CANCEL

/* The longest timeout_ms the broker and the worker honour (2^40 ms, about 34 years): a
 * larger one is treated as this, so that now + timeout_ms cannot overflow a deadline. */
#define PROTO_TIMEOUT_MAX_MS (INT64_C(1) << 40)

/* ms held to 0..PROTO_TIMEOUT_MAX_MS; a negative ms (absent) stays as it is. */
static inline int64_t proto_timeout_clamp(int64_t ms) {
    return ms > PROTO_TIMEOUT_MAX_MS ? PROTO_TIMEOUT_MAX_MS : ms;
}

/* A decoded message. Which fields are set depends on the type; the decoder checks that the
 * REQUIRED ones of each type are present and well typed (proto/PROTOCOL.md, "Field types").
 * Fields not used by the type are zero. An OPTIONAL field sent as nil counts as absent. */
typedef struct proto_msg {
    proto_type_t type;
    proto_raw_t id;          /* client id (string or integer; nil in replies), verbatim */
    proto_str_t agent;       /* query, work */
    proto_raw_t input;       /* query, work (a static nil, n == 1, if absent) */
    proto_str_t session;     /* query, work, session.get, session.delete (n == 0 if absent) */
    int64_t timeout_ms;      /* query, work; -1 if absent */
    bool idempotent;         /* query */
    uint64_t job;            /* work, job event/result/error, cancel by job */
    bool has_job;            /* job present */
    uint64_t seq;            /* event */
    proto_raw_t event;       /* event payload */
    proto_raw_t output;      /* result */
    proto_str_t code;        /* error */
    proto_str_t message;     /* error */
    proto_str_t topic;       /* publish */
    proto_raw_t data;        /* publish (a static nil if absent) */
    proto_str_t name;        /* ready */
    uint64_t capacity;       /* ready, credit */
    proto_raw_t agents;      /* ready: array of strings, verbatim (see proto_agents_next) */
    uint64_t heartbeat_ms;   /* ready (0 if absent) */
    uint64_t attempt;        /* work */
    proto_str_t app, user;   /* session.get, session.list (n == 0 if absent) */
    proto_str_t after;       /* session.list, status: the cursor (n == 0 if absent) */
    uint64_t events;         /* session.get: how many of the newest events */
    bool has_events;         /* events present */
    uint64_t limit;          /* session.list, status: items per page; 0 if absent */
    uint64_t parent;         /* query from a worker: the job it is made for (agent runtime) */
    bool has_parent;         /* parent present */
    proto_str_t branch;      /* query, work: the ADK branch of a sub-agent (n == 0: root) */
    proto_str_t invocation;  /* work: the invocation id (agent runtime) */
    proto_raw_t state;       /* work: the session's state, a map (n == 0 if absent) */
    proto_raw_t history;     /* work: recent session events, an array (n == 0 if absent) */
    proto_raw_t body;        /* the whole message (status replies keep it as is) */
    proto_str_t worker;      /* tasks (client -> broker): the worker's name */
    proto_raw_t history_agents; /* ready: agents whose work wants `history` (array of strings,
                                   see proto_agents_next; n == 0 if absent) */
    /* The model budget (PROTOCOL.md "Model budget"): */
    uint64_t req;            /* budget.acquire, .grant, .deny, .cancel: the worker's number */
    proto_str_t backend;     /* budget.acquire, budget.release: the model backend's name */
    uint64_t model_concurrency; /* budget: permits per backend (0: no limit) */
    double model_rps;        /* budget: grants per second per backend (0: no limit) */
    uint64_t model_burst;    /* budget: grants at once after a pause (0 if absent) */
    uint64_t model_tpm;      /* budget: tokens per minute per backend (0: absent, no limit) */
    uint64_t tokens;         /* budget.release: tokens the request used (0 if absent) */
    /* Broker pairs (PROTOCOL.md "Broker pairs"): */
    proto_raw_t origin;      /* work: who asked (a map the worker keeps and reports back;
                                n == 0 if absent) */
    proto_raw_t held;        /* ready: the jobs the worker still holds (an array of maps;
                                n == 0 if absent) */
} proto_msg_t;

/* Validates and decodes one message. Unknown fields are ignored (forward compatibility); a
 * known field given twice, an unknown type and a missing or ill-typed REQUIRED field are
 * bad requests. lim NULL: defaults; err may be NULL.
 * Returns: 0. Errors: PROTO_EBAD, PROTO_ETOOBIG, PROTO_EVERSION (err says what and where:
 * "field 'agent' is missing"); once the bytes are one well-formed map, out->id still holds
 * its `id` when that is a string or an integer within max_id (n == 0 otherwise), so the
 * error can carry it. Ownership: out points into buf. */
int proto_decode(const uint8_t *buf, size_t len, const proto_limits_t *lim, proto_msg_t *out,
                 proto_error_t *err);

/* Iterates a `ready` message's agent names: *cursor starts at 0.
 * Returns: 1 with *name set, 0 at the end, PROTO_EBAD if an element is not a string. */
int proto_agents_next(proto_raw_t agents, size_t *cursor, proto_str_t *name);

const char *proto_type_name(proto_type_t t);

/* Iterates the entries of a msgpack map held whole in map (validated bytes, e.g. a field of a
 * decoded message): *cursor starts at 0. Each key and value is one whole object, verbatim.
 * Returns: 1 with *key and *val set, 0 after the last entry.
 * Errors: PROTO_EBAD (map is not a map, or its bytes end early). */
int proto_map_next(proto_raw_t map, size_t *cursor, proto_raw_t *key, proto_raw_t *val);
/* Whether raw starts with a msgpack str; if so *out is set to its bytes (inside raw). */
bool proto_raw_str(proto_raw_t raw, proto_str_t *out);
/* Whether raw is the one-byte msgpack nil. */
static inline bool proto_raw_is_nil(proto_raw_t raw) { return raw.n == 1 && raw.p[0] == 0xc0; }

/* ---- reading values in place ---- */

/* One msgpack value read in place from untrusted bytes: its header decoded with every length
 * checked against the bytes that remain, its elements found by skipping (iteratively: deep
 * nesting costs no stack), nothing allocated. Pointers point into the bytes read. */
typedef enum proto_val_type {
    PROTO_V_NIL, PROTO_V_BOOL, PROTO_V_INT, PROTO_V_UINT, PROTO_V_FLOAT, PROTO_V_STR,
    PROTO_V_BIN, PROTO_V_ARRAY, PROTO_V_MAP, PROTO_V_EXT,
} proto_val_type_t;

typedef struct proto_val {
    int type;            /* proto_val_type_t */
    bool b;              /* BOOL */
    int8_t ext_type;     /* EXT */
    int64_t i;           /* INT: every integer that fits int64, whatever its format */
    uint64_t u;          /* UINT: integers above INT64_MAX; also set for INT >= 0 */
    double f;            /* FLOAT (float32 widened) */
    const uint8_t *data; /* STR, BIN, EXT: the payload (EXT: after the type byte) */
    size_t len;          /* STR, BIN, EXT: payload bytes; ARRAY: elements; MAP: pairs */
    const uint8_t *body; /* ARRAY, MAP: the first element; others: just past the value */
    const uint8_t *raw;  /* the whole value, verbatim */
    size_t raw_n;        /* its size in bytes */
} proto_val_t;

/* Reads the value at the start of [p, p+n) (bytes after it are left alone) and checks that
 * all of it, elements included, lies within the n bytes.
 * Returns: 0. Errors: PROTO_EBAD (truncated, or the never-used byte 0xc1; *out zeroed). */
int proto_val_read(const uint8_t *p, size_t n, proto_val_t *out);
/* Iterates the elements of an array, or the keys and values of a map in turn: *cursor starts
 * at 0. Uses only c's raw and raw_n, so a value rebuilt from those works too.
 * Returns: 1 with *out set, 0 after the last element.
 * Errors: PROTO_EBAD (c is not an array or map, or its bytes are malformed). */
int proto_val_next(const proto_val_t *c, size_t *cursor, proto_val_t *out);
/* The value under the string key of a map (the first such entry).
 * Returns: 1 with *out set, 0 when absent. Errors: PROTO_EBAD (not a map, malformed). */
int proto_val_map_get(const proto_val_t *map, const char *key, proto_val_t *out);
/* Element i of an array. Returns: 1 with *out set, 0 when i is past the end.
 * Errors: PROTO_EBAD (not an array, malformed). */
int proto_val_array_get(const proto_val_t *array, size_t i, proto_val_t *out);
/* Whether v is a string equal to the C string s. */
bool proto_val_str_eq(const proto_val_t *v, const char *s);

/* ---- encoding ---- */

/* A growable output buffer with a msgpack-c packer writing into it (pk points at the
 * buffer: do not copy or move a proto_buf_t after proto_buf_init). Pack anything with
 * msgpack_pack_*(&b->pk, ...); a failed allocation sets failed and drops later writes. */
typedef struct proto_buf {
    uint8_t *p;        /* bytes */
    size_t n, cap;     /* used, allocated */
    bool failed;       /* an allocation failed: the contents are incomplete */
    msgpack_packer pk; /* packs into this buffer */
} proto_buf_t;

void proto_buf_init(proto_buf_t *b);
void proto_buf_reset(proto_buf_t *b);   /* n = 0, failed = false, keeps the memory */
void proto_buf_free(proto_buf_t *b);
/* Appends bytes verbatim (a proto_raw_t value). */
void proto_buf_raw(proto_buf_t *b, proto_raw_t raw);
/* What proto_pack_str calls when the string is not a fixstr or the buffer lacks room: grows
 * it (or sets failed) and writes. Not for direct use. */
void proto__pack_str_slow(proto_buf_t *b, const char *s, size_t n);
/* Counts k more entries in the map that starts b (a message, after k fields were appended).
 * Returns: false, the header unchanged, when it cannot say k more without moving the bytes
 * (no map, a fixmap past 15, a map16 past 65535): the caller then takes the fields back. */
bool proto_buf_map_grow(proto_buf_t *b, unsigned k);
/* A string (fixstr, str8, str16 or str32 by its length). Inline for a fixstr with room: a
 * field name's copy is then a move or two of known size, not a call to memcpy. */
static inline void proto_pack_str(proto_buf_t *b, const char *s, size_t n) {
    if (n >= 32 || b->failed || n + 1 > b->cap - b->n) {
        proto__pack_str_slow(b, s, n);
        return;
    }
    b->p[b->n] = (uint8_t)(0xa0 | n);
    if (n) memcpy(b->p + b->n + 1, s, n);
    b->n += n + 1;
}
/* Inline so that a literal's strlen folds to a constant (field names on the hot path). */
static inline void proto_pack_cstr(proto_buf_t *b, const char *s) {
    proto_pack_str(b, s ? s : "", s ? strlen(s) : 0);
}
/* Starts a message map of n_fields entries besides v and type (writes v and type). */
void proto_pack_header(proto_buf_t *b, proto_type_t type, uint32_t n_fields);

/* A query with every field (the agent runtime's included); zero what is absent. */
typedef struct proto_query {
    proto_raw_t id, input;
    proto_str_t agent, session;
    int64_t timeout_ms;          /* < 0: absent */
    bool idempotent;
    proto_str_t app, user;       /* the session's owner, used when it is created */
    proto_str_t branch;          /* the sub-agent's branch */
    uint64_t parent;             /* worker queries: the job they are made for */
    bool has_parent;
} proto_query_t;

/* A work message with every field; zero what is absent. */
typedef struct proto_work {
    uint64_t job, attempt;
    proto_str_t agent, session;
    proto_raw_t input;
    int64_t timeout_ms;          /* < 0: absent */
    proto_str_t invocation, branch;
    proto_raw_t state, history;  /* the session's state (a map) and recent events (an array) */
} proto_work_t;

/* Each encoder resets b, writes one complete message and returns 0, or PROTO_ENOMEM.
 * Absent optional values: a proto_raw_t / proto_str_t with n == 0, timeout_ms < 0. */
int proto_enc_query(proto_buf_t *b, proto_raw_t id, proto_str_t agent, proto_raw_t input,
                    proto_str_t session, int64_t timeout_ms, bool idempotent);
int proto_enc_query_msg(proto_buf_t *b, const proto_query_t *q);
int proto_enc_work_msg(proto_buf_t *b, const proto_work_t *w);
int proto_enc_cancel_id(proto_buf_t *b, proto_raw_t id);
int proto_enc_publish(proto_buf_t *b, proto_str_t topic, proto_raw_t data, proto_raw_t id);
int proto_enc_status_request(proto_buf_t *b, proto_raw_t id);
/* One message about a query, as its client gets it: an event, its result or its error. */
typedef struct proto_reply {
    proto_type_t type;       /* PROTO_EVENT, PROTO_RESULT or PROTO_ERROR */
    proto_raw_t id;          /* nil when n == 0 */
    uint64_t seq;            /* event */
    proto_raw_t payload;     /* event's event, result's output (nil when n == 0) */
    proto_str_t code, message; /* error (code "internal" when n == 0) */
} proto_reply_t;
/* The one encoder of event, result and error: r, with room for `extra` more map entries that
 * the caller packs after it (the bus copy's agent, session, job...: PROTOCOL.md "Bus"). */
int proto_enc_reply(proto_buf_t *b, const proto_reply_t *r, uint32_t extra);
int proto_enc_event(proto_buf_t *b, proto_raw_t id, uint64_t seq, proto_raw_t event);
int proto_enc_result(proto_buf_t *b, proto_raw_t id, proto_raw_t output);
int proto_enc_error(proto_buf_t *b, proto_raw_t id, const char *code, const char *message);
/* The bus body of a client `publish`: {v, type:"event", topic, data}. */
int proto_enc_bus_publish(proto_buf_t *b, proto_str_t topic, proto_raw_t data);
int proto_enc_ready(proto_buf_t *b, proto_str_t name, uint64_t capacity,
                    const char *const *agents, size_t n_agents, uint64_t heartbeat_ms);
/* A ready that also names the agents whose work should carry the session's history
 * (history[i] true: agents[i] wants it); the others get none, which saves the broker reading
 * and packing it and the worker decoding it. */
int proto_enc_ready_history(proto_buf_t *b, proto_str_t name, uint64_t capacity,
                            const char *const *agents, const bool *history, size_t n_agents,
                            uint64_t heartbeat_ms);
int proto_enc_work(proto_buf_t *b, uint64_t job, proto_str_t agent, proto_raw_t input,
                   proto_str_t session, int64_t timeout_ms, uint64_t attempt);
int proto_enc_job_event(proto_buf_t *b, uint64_t job, proto_raw_t event);
int proto_enc_job_result(proto_buf_t *b, uint64_t job, proto_raw_t output);
int proto_enc_job_error(proto_buf_t *b, uint64_t job, const char *code, const char *message);
int proto_enc_cancel_job(proto_buf_t *b, uint64_t job);
int proto_enc_credit(proto_buf_t *b, uint64_t capacity);
int proto_enc_simple(proto_buf_t *b, proto_type_t type); /* heartbeat, disconnect */
/* Session requests (proto/PROTOCOL.md, "Sessions"). Absent: app, user, after with n == 0;
 * events < 0; limit 0. */
int proto_enc_session_get(proto_buf_t *b, proto_raw_t id, proto_str_t session, proto_str_t app,
                          proto_str_t user, int64_t events);
int proto_enc_session_list(proto_buf_t *b, proto_raw_t id, proto_str_t app, proto_str_t user,
                           proto_str_t after, uint64_t limit);
int proto_enc_session_delete(proto_buf_t *b, proto_raw_t id, proto_str_t session);
/* `tasks` (proto/PROTOCOL.md, "Observing workers"): a client asks for worker's task list
 * (id absent: n == 0); the broker asks a worker with its own reference job; the worker's
 * `tasks_reply` starts here and the caller packs the output (one value) next on b->pk. */
int proto_enc_tasks(proto_buf_t *b, proto_raw_t id, proto_str_t worker);
int proto_enc_tasks_job(proto_buf_t *b, uint64_t job);
int proto_enc_tasks_reply_begin(proto_buf_t *b, uint64_t job);
/* The model budget (proto/PROTOCOL.md, "Model budget"): the broker's announcement after
 * `ready` (rps 0: none), and the permit dialog. deny's code is "overloaded", "cancelled" or
 * "bad_request". */
int proto_enc_budget(proto_buf_t *b, uint64_t concurrency, double rps, uint64_t burst,
                     uint64_t tpm); /* tpm 0: model_tpm not sent */
int proto_enc_budget_acquire(proto_buf_t *b, uint64_t req, proto_str_t backend);
int proto_enc_budget_grant(proto_buf_t *b, uint64_t req);
int proto_enc_budget_deny(proto_buf_t *b, uint64_t req, const char *code, const char *message);
/* tokens: what the request used (0: unknown or none; not sent). */
int proto_enc_budget_release(proto_buf_t *b, proto_str_t backend, uint64_t tokens);
int proto_enc_budget_cancel(proto_buf_t *b, uint64_t req);
/* Starts a `result` whose output the caller packs next (exactly one value) with
 * msgpack_pack_* on b->pk: for outputs built in place rather than copied. Resets b.
 * Returns: 0. Errors: PROTO_ENOMEM (also check b->failed after packing the output). */
int proto_enc_result_begin(proto_buf_t *b, proto_raw_t id);

/* ---- a work's origin (PROTOCOL.md "Broker pairs") ---- */

/* Who asked for a job, as a broker pair's active stamps it on `work` and a worker reports it
 * back in `ready`'s held list: a client's query (client set) or a worker's call (caller set:
 * a plain call, or a sub-invocation when parent is set). */
typedef struct proto_origin {
    proto_raw_t id;          /* the query's id (a call's: the caller's integer call id) */
    const uint8_t *client;   /* a client's routing id (bin); NULL for a worker's call */
    size_t client_n;
    const char *key;         /* the client's CURVE key, 40 Z85 characters; NULL none */
    uint64_t caller;         /* a worker's call: the caller's incarnation (never 0) */
    uint64_t call;           /* a worker's call: its id as an integer (id holds it packed) */
    uint64_t parent;         /* a sub-invocation: the job that made it; 0 none */
    bool idempotent;
} proto_origin_t;

/* Appends o as one msgpack map (the value of a work's `origin`): {id, client, idempotent,
 * key?} for a client's query, {id, caller, parent?, idempotent} for a worker's call.
 * Returns: 0. Errors: PROTO_EBAD (neither client nor caller, or both; no id; a key that is
 * not 40 characters; b unchanged), PROTO_ENOMEM (b->failed set). */
int proto_enc_origin(proto_buf_t *b, const proto_origin_t *o);
/* Reads an origin map (v: one value, e.g. a held entry's `origin`); pointers point into its
 * bytes. max_id: bytes of the id as msgpack (0: no limit). *why: what was wrong, on error.
 * Returns: 0. Errors: PROTO_EBAD (not a map; no id, or one that is not a string or integer
 * within max_id; a client that is not 1-255 bytes of bin; a key that is not 40 characters; a
 * caller that is not a positive integer, or a caller's id that is not a non-negative integer;
 * neither client nor caller, or both). */
int proto_origin_read(const proto_val_t *v, size_t max_id, proto_origin_t *o,
                      const char **why);

/* ---- JSON, for people and command-line tools ---- */

/* Appends a msgpack value (exactly one, validated here) as one line of JSON to json_out:
 * strings escaped (invalid UTF-8 becomes U+FFFD), binary as base64 strings, ext as
 * {"ext":type,"base64":"..."}, floats as the shortest %.15g..%.17g text that reads back
 * exactly (NaN and infinities as null), non-string map keys as strings holding their JSON
 * text. json_out->p stays NUL-terminated (the NUL not counted in n).
 * Returns: 0. Errors: PROTO_EBAD (not one valid msgpack value, deeper than PROTO_MAX_DEPTH,
 * or non-string keys nested more than 4 deep inside non-string keys; json_out unchanged),
 * PROTO_ENOMEM. */
int proto_raw_to_json(proto_raw_t raw, proto_buf_t *json_out);
/* Parses strict JSON text (RFC 8259, nesting up to PROTO_MAX_DEPTH) and appends it to out as
 * one msgpack value: integral numbers become integers when they fit int64/uint64, others
 * doubles. err may be NULL.
 * Returns: 0. Errors: PROTO_EBAD (out unchanged; err names the byte offset), PROTO_ENOMEM. */
int proto_json_to_msgpack(const char *json, size_t n, proto_buf_t *out, proto_error_t *err);

#endif
