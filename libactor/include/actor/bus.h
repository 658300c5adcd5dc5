/* actor/bus.h: placeholder until its module lands. */
#ifndef ACTOR_BUS_H
#define ACTOR_BUS_H
#include "actor/task.h"
#endif
