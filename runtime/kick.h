/*
 * runtime/kick.h - making a busy worker post its ring's completions
 * (kick.c). Private to runtime/ and lifecycle/.
 */
#ifndef MAGPIE_RUNTIME_KICK_H
#define MAGPIE_RUNTIME_KICK_H

#include "runtime/sched.h"

/* Once per process, before a multi-worker runtime's threads start: the
 * kick's handler, where the signal has its default disposition. */
MAG_HIDDEN void mag__kick_init(void);
/* On each worker thread: the kick's signal is not blocked there. */
MAG_HIDDEN void mag__kick_thread_init(void);
/* Interrupts w's thread so that its ring's pending completions are posted.
 * false where no kick is possible (the program owns the signal). */
MAG_HIDDEN bool mag__kick(mag__worker_t *w);

#endif /* MAGPIE_RUNTIME_KICK_H */
