/*
 * io/internal.h - what the files of io/ share.
 *
 * An operation is one io_uring request described by a record in a table of
 * kinds (ops.c): how to prepare its SQE, the blocking system call that
 * replaces it outside a task, and a name for dumps. The waiting task's record,
 * mag__io_t, lives on the task's stack; the SQE's user_data points at its
 * mag__op_t, and the completion stores the result and wakes the task.
 */
#ifndef MAGPIE_IO_INTERNAL_H
#define MAGPIE_IO_INTERNAL_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "magpie/io.h"
#include "runtime/internal.h"

/* The arguments of one operation, interpreted by its kind. */
typedef struct mag__io_args {
    int fd;
    int flags;    /* msg flags, open flags, poll events */
    void *buf;    /* buffer, iovec array, path, sockaddr or msghdr */
    uint64_t len; /* byte count, iovec count, mode or socklen */
    int64_t off;  /* file offset, -1 for the current position */
    void *aux;    /* accept: socklen_t * */
} mag__io_args_t;

/* One record per operation kind (kernel io_uring/opdef.c style). The name is
 * the first member so that a task dump given wait_obj can print it. */
typedef struct mag__io_kind {
    const char *name;
    void (*prep)(struct io_uring_sqe *sqe, const mag__io_args_t *a);
    int64_t (*sys)(const mag__io_args_t *a); /* blocking form: result or -errno */
} mag__io_kind_t;

/* The kinds, indexes into mag__io_kinds[]. */
enum {
    MAG__IO_READ,
    MAG__IO_WRITE,
    MAG__IO_READV,
    MAG__IO_WRITEV,
    MAG__IO_RECV,
    MAG__IO_SEND,
    MAG__IO_RECVMSG,
    MAG__IO_SENDMSG,
    MAG__IO_ACCEPT,
    MAG__IO_CONNECT,
    MAG__IO_OPEN,
    MAG__IO_CLOSE,
    MAG__IO_FSYNC,
    MAG__IO_POLL,
    MAG__IO_NKINDS
};
MAG_HIDDEN extern const mag__io_kind_t mag__io_kinds[MAG__IO_NKINDS];

/* The record of one operation in flight; on the waiting task's stack. */
typedef struct mag__io {
    mag__op_t op;     /* first: the SQE's user_data */
    mag_task_t *task; /* woken by the completion */
    int32_t res;      /* the CQE's result, valid once done */
    uint32_t cqe_flags;
    _Atomic uint32_t done; /* 1 once res is set (release; pairs with the waiter's acquire) */
} mag__io_t;

/* Runs one operation: the ring from a task, the blocking call otherwise. */
MAG_HIDDEN int64_t mag__io_run(int kind, const mag__io_args_t *a);
/* The same for a kind described outside mag__io_kinds[] (probe.c's): kind is
 * its index in mag__io_kinds[], or -1 (then mag_serve does not time it). */
MAG_HIDDEN int64_t mag__io_run_kind(const mag__io_kind_t *k, int kind, const mag__io_args_t *a);

/* Waits for io (whose SQE is prepared) to complete: parks the task; on
 * cancellation or deadline cancels the request and keeps waiting for its
 * completion. Ends the suspension begun by the caller. Returns the result,
 * or the interruption's -ECANCELED/-ETIMEDOUT when the request was cancelled. */
MAG_HIDDEN int64_t mag__io_wait(mag__io_t *io);

/* The completion callback of mag__io_t records. */
MAG_HIDDEN void mag__io_complete(mag__op_t *op, int res, uint32_t cqe_flags);

/* Whole transfers on a socket, for the layers above io/ (mag_send_all is the
 * public face of the first). From a task the calls go through the ring and
 * the task suspends; on a plain thread, or with blocking set, they are the
 * blocking system calls (retried on EINTR). blocking is for processes forked
 * from a runtime's thread: the thread-locals they inherit may still name a
 * task of their parent, whose ring is not theirs.
 *
 * mag__io_send_all sends all of iov[0..cnt) (MSG_NOSIGNAL added to flags),
 * moving the iovecs past what went: the array is the caller's scratch.
 * 0 or a negative errno. */
MAG_HIDDEN int mag__io_send_all(int fd, struct iovec *iov, int cnt, int flags, bool blocking);
/* Receives at least min and at most cap bytes into buf (a small message and
 * whatever follows it in one call). The count, -EPIPE when the stream ends
 * before min, or a negative errno. */
MAG_HIDDEN ssize_t mag__io_recv_min(int fd, void *buf, size_t min, size_t cap, bool blocking);

/* mag_serve's connection tasks (serve.c, serve_conn.c). mag__io_run knows
 * one by its body, and has each operation it runs on its own connection
 * timed: begin returns nonzero when the operation is (its input or output
 * class), and then end must follow with the operation's result. */
typedef struct mag__conn mag__conn_t;
MAG_HIDDEN int mag__serve_conn_main(void *arg);
MAG_HIDDEN int mag__serve_wait_begin(mag__conn_t *c, int kind, const mag__io_args_t *a);
MAG_HIDDEN void mag__serve_wait_end(mag__conn_t *c, int begun, int64_t res);

/* Name resolution (socket.c). Fills out[0..max) with addresses for host and
 * port (numeric port), family AF_UNSPEC/AF_INET/AF_INET6, SOCK_STREAM or
 * SOCK_DGRAM, passive for listeners. Numeric hosts never leave the caller;
 * names go to getaddrinfo on a short-lived thread (in a task) or on the
 * calling thread (outside one). Returns the count (>= 1) or a negative errno
 * (mag_resolve_error's mapping; -ECANCELED/-ETIMEDOUT from a task). */
MAG_HIDDEN int mag__resolve(const char *host, uint16_t port, int socktype, bool passive,
                            struct sockaddr_storage *out, socklen_t *lens, int max);

/* ---- operations the running kernel may lack (probe.c) --------------------
 * Kinds added to io_uring after the oldest kernel magpie runs on (shutdown,
 * statx, unlinkat, ...). The ring is asked once which opcodes it knows
 * (io_uring_get_probe); a kind the kernel lacks runs its blocking form
 * instead: on the blocking pool from a task when the call may block (the file
 * system), inline when it never does (shutdown). */
typedef struct mag__io_optional_kind {
    mag__io_kind_t kind; /* first: a task dump prints kind.name */
    uint8_t opcode;      /* the IORING_OP_* that kind.prep uses */
    bool may_block;      /* the fallback goes to the blocking pool */
} mag__io_optional_kind_t;

/* From a task: the ring when the kernel has k's opcode, else the fallback
 * (which honours cancellation and deadlines before it starts, as
 * mag_run_blocking does). Outside a task: k's blocking system call. */
MAG_HIDDEN int64_t mag__io_run_optional(const mag__io_optional_kind_t *k, const mag__io_args_t *a);

/* For tests: when set, every optional kind takes its fallback, as on a kernel
 * without the opcodes. Set before creating a runtime. */
MAG_HIDDEN extern bool mag__io_optional_off;

#endif /* MAGPIE_IO_INTERNAL_H */
