/* base/connect.h: connecting one ZeroMQ socket to a broker pair: the worker and actorctl take
 * --broker as a comma-separated endpoint list (the active and the standby) and connect to
 * each, so whichever broker serves gets the traffic. */
#ifndef BASE_CONNECT_H
#define BASE_CONNECT_H

#include <stddef.h>

/* Connects socket s to every endpoint of list ("tcp://a:5555,tcp://b:5555"; empty items are
 * skipped). With more than one endpoint it sets ZMQ_IMMEDIATE first, so messages queue only
 * for a connected broker, not for the one that is down. Stops at the first endpoint that
 * fails, naming it in failed (cap bytes, may be NULL).
 * Returns: 0. Errors: -errno of zmq_connect (-EINVAL a malformed endpoint, -EPROTONOSUPPORT
 * an unknown transport...), -ENAMETOOLONG an endpoint of 512 bytes or more. */
int base_connect_all(void *s, const char *list, char *failed, size_t cap);

#endif
