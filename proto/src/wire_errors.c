/* wire_errors.c: the one table of proto/errors.h as lookups. Every value is a case of one switch:
 * a number given two meanings is a compile error. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

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

int proto_err_known(const char *code) {
    static const char *const codes[] = {
#define PROTO_ERR_NAME(name, val, code, text) code,
#define PROTO_WIRE_NAME(code, text) code,
        PROTO_ERRORS(PROTO_ERR_NAME) PROTO_WIRE_ERRORS(PROTO_WIRE_NAME)
#undef PROTO_ERR_NAME
#undef PROTO_WIRE_NAME
    };
    for (size_t i = 0; code && i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i], code) == 0) return 1;
    return 0;
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
