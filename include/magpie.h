/* magpie - a work-stealing async runtime for C on io_uring. */
#ifndef MAGPIE_H
#define MAGPIE_H

#include "magpie/version.h"
#include "magpie/runtime.h"
#include "magpie/io.h"
#include "magpie/sync.h"
#include "magpie/pool.h"
#include "magpie/metrics.h"

#endif
