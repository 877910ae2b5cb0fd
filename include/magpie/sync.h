/* magpie/sync.h - placeholder until its subsystem lands. */
#ifndef MAGPIE_SYNC_H
#define MAGPIE_SYNC_H
#include "magpie/runtime.h"
#endif
