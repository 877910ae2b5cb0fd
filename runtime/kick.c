/*
 * runtime/kick.c - making a busy worker post its ring's completions.
 *
 * The rings of a multi-worker runtime are set up with COOP_TASKRUN: the
 * kernel finishes a completion that waited (a socket that became readable)
 * on the owner's thread, at its next entry to or exit from the kernel,
 * instead of interrupting it for each one. Workers enter the kernel all the
 * time, so that costs nothing; but a worker inside a long task would only
 * post them at its next timer tick (up to 10 ms), and no rescuer can reap a
 * completion that is not posted yet (monitor.c). So the monitor kicks such a
 * worker: a signal with an empty handler, whose delivery runs the pending
 * work on the way back to the task, after which a rescuer reaps it. Go's
 * scheduler preempts with the same signal, SIGURG, chosen because
 * programs rarely use it.
 *
 * The handler is installed only where SIGURG has its default disposition;
 * a program with its own SIGURG handler keeps it, and magpie then relies on
 * the tick alone. Installed with SA_RESTART, so a system call a task makes
 * is restarted rather than interrupted where the kernel allows it.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "runtime/kick.h"

#define KICK_SIGNAL SIGURG

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
/* Written once under kick_once, whose return orders it before any reader
 * that went through mag__kick_init; read plainly afterwards. */
static bool kick_ready;

static void on_kick(int sig)
{
    (void)sig; /* the delivery itself is the point */
}

static void install(void)
{
    struct sigaction old;
    if (sigaction(KICK_SIGNAL, NULL, &old) != 0)
        return;
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
        return; /* the program's own: leave it */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_kick;
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    kick_ready = sigaction(KICK_SIGNAL, &sa, NULL) == 0;
}

void mag__kick_init(void)
{
    pthread_once(&kick_once, install);
}

void mag__kick_thread_init(void)
{
    /* A worker inherits the mask of the thread that made the runtime. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

bool mag__kick(mag__worker_t *w)
{
    if (!kick_ready || !w->is_thread)
        return false;
    return pthread_kill(w->thread, KICK_SIGNAL) == 0;
}
