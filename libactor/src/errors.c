/* errors.c: act_strerror and act_err_name, both generated from ACT_ERRNO_MAP so the table
 * is the single source of truth. */
#include "actor/errors.h"

const char *act_strerror(int code) {
    switch (code) {
#define ACT_ERR_MSG(name, val, msg) case (val): return msg;
        ACT_ERRNO_MAP(ACT_ERR_MSG)
#undef ACT_ERR_MSG
    default: return "unknown error";
    }
}

const char *act_err_name(int code) {
    switch (code) {
#define ACT_ERR_NAME(name, val, msg) case (val): return #name;
        ACT_ERRNO_MAP(ACT_ERR_NAME)
#undef ACT_ERR_NAME
    default: return "UNKNOWN";
    }
}
