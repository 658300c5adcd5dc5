/* actor/thread.h: placeholder until its module lands. */
#ifndef ACTOR_THREAD_H
#define ACTOR_THREAD_H
#include "actor/task.h"
#endif
