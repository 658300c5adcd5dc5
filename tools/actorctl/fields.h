/* tools/actorctl/fields.h: reading the fields of a decoded reply (msgpack-c objects) and the
 * clock, for actorctl.c and observe.c. */
#ifndef CTL_FIELDS_H
#define CTL_FIELDS_H

#include <stdint.h>

#include <msgpack.h>

/* The value under a string key of a map object; NULL when absent or map is not a map. */
const msgpack_object *ctl_get(const msgpack_object *map, const char *key);
/* The integer under key, 0 when absent or not an integer. */
long long ctl_num(const msgpack_object *map, const char *key);
/* A string field as printf's "%.*s" wants it: its length (at most max) and its bytes; a
 * missing or non-string field prints as "-". */
int ctl_slen(const msgpack_object *o, int max);
const char *ctl_sptr(const msgpack_object *o);

#endif
