/* magpie/pool.h - placeholder until its subsystem lands. */
#ifndef MAGPIE_POOL_H
#define MAGPIE_POOL_H
#include "magpie/runtime.h"
#endif
