/* magpie/metrics.h - placeholder until its subsystem lands. */
#ifndef MAGPIE_METRICS_H
#define MAGPIE_METRICS_H
#include "magpie/runtime.h"
#endif
