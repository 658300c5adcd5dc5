/* tools/actorctl/fields.c: see fields.h. */
#include "fields.h"

#include <string.h>
#include <time.h>

const msgpack_object *ctl_get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

long long ctl_num(const msgpack_object *map, const char *key) {
    const msgpack_object *v = ctl_get(map, key);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (long long)v->via.u64;
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return (long long)v->via.i64;
    return 0;
}

int ctl_slen(const msgpack_object *o, int max) {
    int n = o && o->type == MSGPACK_OBJECT_STR ? (int)o->via.str.size : 1;
    return n > max ? max : n;
}

const char *ctl_sptr(const msgpack_object *o) {
    return o && o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr : "-";
}
