/* actor/actor.h: libactor, a cooperative runtime on libuv: tasks on stackful fibers,
 * composition, timeouts and cancellation, synchronisation, queues, an in-process event bus,
 * threads, resilience patterns and debug mode. Include this one header. */
#ifndef ACTOR_ACTOR_H
#define ACTOR_ACTOR_H

#include "actor/errors.h"
#include "actor/log.h"
#include "actor/loop.h"
#include "actor/task.h"
#include "actor/compose.h"
#include "actor/sync.h"
#include "actor/queue.h"
#include "actor/chan.h"
#include "actor/bus.h"
#include "actor/thread.h"
#include "actor/resilience.h"
#include "actor/debug.h"

#endif
