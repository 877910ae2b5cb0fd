/*
 * procpool/internal.h - what the two halves of the process pool share: the
 * wire formats between the parent, the zygotes and the workers, the registry
 * of functions, and the child side's entry point (zygote.c) as the parent's
 * side (procpool.c) calls it.
 */
#ifndef MAGPIE_PROCPOOL_INTERNAL_H
#define MAGPIE_PROCPOOL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "magpie/pool.h"
#include "runtime/internal.h"

#define MAG__PROC_MAGIC 0x6d61676a /* "magj" */

/* A job's request on a worker's socket, followed by len bytes of input. */
typedef struct mag__proc_req {
    uint32_t magic;
    uint32_t fn;
    uint64_t len;
    uint64_t seq; /* the job's number, echoed by its reply */
} mag__proc_req_t;

/* A worker's reply, followed by len bytes of output. A reply whose seq is
 * not the job's in flight (or that comes while none is) proves that
 * something other than the worker loop wrote to the socket: the parent then
 * treats the worker as dead, so that no caller ever reads another's output. */
typedef struct mag__proc_rep {
    int32_t rc;
    uint32_t magic;
    uint64_t len;
    uint64_t seq;
} mag__proc_rep_t;

/* Commands on a zygote's control socket (one byte each). */
enum {
    MAG__ZY_WORKER = 'S', /* fork a worker: reply with its socket and pidfd */
    MAG__ZY_SPARE = 'P',  /* fork a spare zygote: reply with its control socket and pidfd */
    MAG__ZY_QUIT = 'Q',   /* kill and reap the workers, then exit */
};

/* A zygote's answer to MAG__ZY_WORKER or MAG__ZY_SPARE; SCM_RIGHTS carries
 * the parent's end of the new process's socket and its pidfd when err is 0. */
typedef struct mag__zy_msg {
    int32_t err;
    int32_t pid;
} mag__zy_msg_t;

/* The registry: a function's index for a request (or -ENOENT); frozen by
 * the first pool's start, before its zygote is forked. */
MAG_HIDDEN int mag__proc_lookup(const char *name);
MAG_HIDDEN void mag__proc_freeze(void);

/* Blocking whole transfers (the zygotes, the workers and pool threads). */
MAG_HIDDEN int mag__proc_send_two(int fd, const void *hdr, size_t hlen, const void *body,
                                  size_t blen);

/* The zygote's loop on control socket ctl. pdeath: die with the parent
 * (PR_SET_PDEATHSIG, only when the parent's forking thread is its main
 * thread); a spare zygote has none, since it must outlive the zygote that
 * forked it, and leaves on its control socket's EOF like every zygote. */
MAG_HIDDEN _Noreturn void mag__zygote_main(int ctl, pid_t parent, bool pdeath);

#endif /* MAGPIE_PROCPOOL_INTERNAL_H */
