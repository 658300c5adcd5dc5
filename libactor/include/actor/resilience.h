/* actor/resilience.h: placeholder until its module lands. */
#ifndef ACTOR_RESILIENCE_H
#define ACTOR_RESILIENCE_H
#include "actor/task.h"
#endif
