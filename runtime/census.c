/*
 * runtime/census.c - reading the task census (census.h): tasks live, for
 * shutdown, and the totals, for metrics.
 */
#include "runtime/census.h"

uint64_t mag__tasks_live(mag_runtime_t *rt)
{
    uint64_t out = 0, in = 0;
    /* seq_cst: after the caller's seq_cst store of closing, pairs with the
     * plain threads' seq_cst increments of foreign_in (see mag__task_admit). */
    out += atomic_load_explicit(&rt->foreign_out, memory_order_seq_cst);
    for (unsigned i = 0; i < rt->nworkers; i++) /* acquire: pairs with mag__census_add */
        out += atomic_load_explicit(&rt->workers[i]->tasks_out, memory_order_acquire);
    in += atomic_load_explicit(&rt->foreign_in, memory_order_seq_cst);
    for (unsigned i = 0; i < rt->nworkers; i++)
        in += atomic_load_explicit(&rt->workers[i]->tasks_in, memory_order_acquire);
    return in > out ? in - out : 0;
}

void mag__tasks_counted(mag_runtime_t *rt, uint64_t *admitted, uint64_t *finished)
{
    uint64_t out = atomic_load_explicit(&rt->foreign_out, memory_order_relaxed);
    uint64_t in = atomic_load_explicit(&rt->foreign_in, memory_order_relaxed);
    for (unsigned i = 0; i < rt->nworkers; i++) { /* relaxed: figures for metrics */
        out += atomic_load_explicit(&rt->workers[i]->tasks_out, memory_order_relaxed);
        in += atomic_load_explicit(&rt->workers[i]->tasks_in, memory_order_relaxed);
    }
    *admitted = in;
    *finished = out;
}
