/*
 * runtime/debug.c - debug mode (cfg.debug / MAG_DEBUG=1).
 */
#include "runtime/sched.h"

void mag__debug_start(mag_runtime_t *rt)
{
    (void)rt;
}

void mag__debug_stop(mag_runtime_t *rt)
{
    (void)rt;
}
