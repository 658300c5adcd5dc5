/* actor/queue.h: placeholder until its module lands. */
#ifndef ACTOR_QUEUE_H
#define ACTOR_QUEUE_H
#include "actor/task.h"
#endif
