/* actor/errors.h: the one error table of libactor.
 * Every public function returns 0 (or a count) on success and a negative code on failure.
 * Codes that mirror errno are -errno; libactor's own codes sit above the errno range. */
#ifndef ACTOR_ERRORS_H
#define ACTOR_ERRORS_H

#include <errno.h>

/* X(NAME, value, message). errno-valued codes first, then our own (below -4000). */
#define ACT_ERRNO_MAP(X)                                                              \
    X(ECANCELED, -ECANCELED, "operation cancelled")                                   \
    X(ETIMEDOUT, -ETIMEDOUT, "deadline passed")                                       \
    X(EAGAIN, -EAGAIN, "would block")                                                 \
    X(EINVAL, -EINVAL, "invalid argument")                                            \
    X(ENOMEM, -ENOMEM, "out of memory")                                               \
    X(EBUSY, -EBUSY, "resource busy")                                                 \
    X(EPERM, -EPERM, "operation not permitted")                                       \
    X(ENOENT, -ENOENT, "no such entry")                                               \
    X(EIO, -EIO, "i/o error")                                                         \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                              \
    X(EMSGSIZE, -EMSGSIZE, "message too large")                                       \
    X(EHOSTUNREACH, -EHOSTUNREACH, "peer unreachable")                                \
    X(EGROUP, -4001, "several errors (inspect the error group)")                      \
    X(ECLOSED, -4002, "object was shut down")                                         \
    X(EBROKEN, -4003, "barrier broken")                                               \
    X(ECIRCUIT, -4004, "circuit breaker open")                                        \
    X(EGAVEUP, -4005, "supervisor restart budget exhausted")                          \
    X(EOVERRELEASE, -4006, "released more often than acquired")                       \
    X(EEOF, -4007, "no more items")                                                   \
    X(EFAILED, -4008, "task failed")

enum {
#define ACT_ERR_ENUM(name, val, msg) ACT_##name = (val),
    ACT_ERRNO_MAP(ACT_ERR_ENUM)
#undef ACT_ERR_ENUM
};

/* Human text for a code ("operation cancelled"). Unknown codes give "unknown error". */
const char *act_strerror(int code);

/* The code's name ("ECANCELED"). Unknown codes give "UNKNOWN". */
const char *act_err_name(int code);

#endif
