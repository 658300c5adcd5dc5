/* errors.c: the one table of proto/errors.h as lookups. Every value is a case of one switch:
 * a number given two meanings is a compile error. */
#include <errno.h>
#include <stddef.h>

#include "proto/errors.h"

const char *proto_err_code(int rc) {
    switch (rc) {
    case 0: return "ok";
#define PROTO_ERR_CASE(name, val, code, text) \
    case val: return code;
        PROTO_ERRORS(PROTO_ERR_CASE)
#undef PROTO_ERR_CASE
    case -ETIMEDOUT: return "timeout";
    case -ECANCELED: return "cancelled";
    case -EINVAL: return "bad_request";
    case -EMSGSIZE: return "too_large";
    case -EAGAIN: return "overloaded";
    default: return "internal";
    }
}

const char *proto_err_text(int rc) {
    switch (rc) {
#define PROTO_ERR_TEXT(name, val, code, text) \
    case val: return text;
        PROTO_ERRORS(PROTO_ERR_TEXT)
#undef PROTO_ERR_TEXT
    default: return NULL;
    }
}
