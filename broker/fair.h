/* broker/fair.h: fair shares of the broker's queue (issue 11): one client, or one CURVE key
 * over all its connections, cannot fill the queue that everyone shares. Below --fair-share-from
 * percent of --max-queue anyone may queue; past it an owner may add a query only while it
 * holds fewer than max-queue / (owners + 1), and room is kept for owners with nothing
 * waiting, so a newcomer always gets in. A pure function (tests/broker/test_fair.c). */
#ifndef BRK_FAIR_H
#define BRK_FAIR_H

#include <stdbool.h>
#include <stdint.h>

/* Whether an owner may queue one more query. pending: queries queued or waiting for a
 * session, all owners; max: --max-queue; from_pct: --fair-share-from; mine: the owner's
 * queued or waiting queries; owners: owners with any (the sender among them when it has
 * any). Past from_pct an owner is held to max / (owners + 1), and owners that already wait
 * stop at the last half of the room above from_pct: that half is kept for owners with
 * nothing waiting, whatever order the others came in. Returns: true to admit. */
static inline bool brk_fair_admit(uint64_t pending, uint64_t max, uint64_t from_pct,
                                  uint64_t mine, uint64_t owners) {
    if (pending >= max) return false;
    uint64_t from = max / 100 * from_pct + max % 100 * from_pct / 100;
    if (from_pct >= 100 || pending < from || mine == 0) return true;
    if (pending >= max - (max - from) / 2) return false; /* kept for newcomers */
    uint64_t share = max / (owners + 1);
    return mine < (share ? share : 1);
}

#endif
