/*
 * magpie/io.h - I/O operations on the worker's io_uring, sockets, servers
 * and buffered streams.
 *
 * Every function here follows the conventions of magpie/runtime.h: it returns
 * a count or 0 on success and a negative errno on failure, and never reports
 * through errno.
 *
 * Called from a task, an operation suspends only the calling task: it is one
 * io_uring request on the calling worker's ring, submitted with everything
 * else the worker prepared in the same loop iteration. Called from a plain OS
 * thread (no task), it performs the ordinary blocking system call instead.
 *
 * Cancellation and deadlines. When the calling task is cancelled, or its
 * deadline passes, while an operation is in flight, the request is cancelled
 * on the ring, and the call still waits for the kernel to finish with it
 * before returning: the kernel never writes into a buffer after the call has
 * returned. The call then returns -ECANCELED or -ETIMEDOUT. If the operation
 * completed anyway (the result raced the cancellation), its real result is
 * returned instead, so that received bytes or an accepted descriptor are never
 * lost; the next suspension point reports the cancellation. A task that is
 * already cancelled (or past its deadline) when it calls an operation gets
 * -ECANCELED (-ETIMEDOUT) at once, and nothing is submitted.
 *
 * Errors of the operations themselves are the kernel's, negated: -EBADF for a
 * bad descriptor, -EFAULT for a bad buffer, -EINVAL, -ECONNRESET, -EPIPE, ...
 */
#ifndef MAGPIE_IO_H
#define MAGPIE_IO_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "magpie/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- operations ----------------------------------------------------------
 * Lengths above 0x7ffff000 bytes are clamped to it, as the kernel does for
 * read(2) and write(2): a short count is then possible, as always.
 * Suspends (task) or blocks (thread) until the operation completes. With
 * several workers, mag_recv and mag_send on a socket first try the socket
 * without waiting, and a receive that must wait waits for readiness on the
 * runtime's one epoll, so that any worker can resume it (README, "Sockets
 * at several workers"; ring_sockets in mag_config_t turns this off). */

/* read/pread. off == -1: at the file's current position (and advance it);
 * off >= 0: at that offset, the position untouched. Sockets and pipes ignore
 * off only when it is -1; pass -1 for them. Returns the count, 0 at EOF;
 * -EINVAL for an offset below -1. */
MAG_API ssize_t mag_read(int fd, void *buf, size_t n, off_t off);
/* write/pwrite, offsets as mag_read. On a socket whose peer is gone this is
 * write(2): it may raise SIGPIPE. Use mag_send for sockets. */
MAG_API ssize_t mag_write(int fd, const void *buf, size_t n, off_t off);
/* readv/preadv and writev/pwritev. cnt must be 0..IOV_MAX (else -EINVAL). */
MAG_API ssize_t mag_readv(int fd, const struct iovec *iov, int cnt, off_t off);
MAG_API ssize_t mag_writev(int fd, const struct iovec *iov, int cnt, off_t off);

/* recv(2): the count, 0 when the peer has shut its side down. */
MAG_API ssize_t mag_recv(int fd, void *buf, size_t n, int flags);
/* send(2) with MSG_NOSIGNAL always added: a closed peer gives -EPIPE, never
 * SIGPIPE. May send fewer than n bytes (as send(2) on a blocking socket can
 * when interrupted); mag_stream_write / mag_send_all send everything. */
MAG_API ssize_t mag_send(int fd, const void *buf, size_t n, int flags);
/* send(2) until all n bytes are sent: returns n or the first error (bytes
 * sent before an error are not reported). */
MAG_API ssize_t mag_send_all(int fd, const void *buf, size_t n, int flags);
/* recvfrom(2) and sendto(2) (MSG_NOSIGNAL added), through recvmsg/sendmsg on
 * the ring. a/alen may be NULL (recvfrom: alen is in/out as in recvfrom). */
MAG_API ssize_t mag_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a,
                             socklen_t *alen);
MAG_API ssize_t mag_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
                           socklen_t alen);

/* accept4(2) with SOCK_CLOEXEC. Returns the new descriptor. a/alen may be
 * NULL. The new socket is blocking, like every socket magpie creates: the
 * ring does not need O_NONBLOCK, and plain threads get blocking calls. */
MAG_API int mag_accept(int lfd, struct sockaddr *a, socklen_t *alen);
/* connect(2); returns 0. */
MAG_API int mag_connect(int fd, const struct sockaddr *a, socklen_t alen);
/* openat(AT_FDCWD, path, flags, mode); returns the descriptor. flags are
 * passed as given (add O_CLOEXEC yourself). */
MAG_API int mag_open(const char *path, int flags, mode_t mode);
/* Closes fd, and the close is final. From a task, first every magpie
 * operation in flight on fd, in any task on any worker of the caller's
 * runtime, is cancelled: each of them returns -EBADF (never data read from
 * whatever file the number names next). mag_close waits until the kernel has
 * let go of them, then closes, through the ring; so the number cannot be
 * reused while one of them still waits. The wait is uninterruptible and the
 * descriptor is always closed: a cancelled task (or one past its deadline)
 * gets the close too, never -ECANCELED, so that no descriptor leaks on an
 * unwinding path. Returns 0 or -EBADF (-EIO and the like from the file
 * system). Linux releases the descriptor even when close(2) reports EINTR:
 * mag_close returns 0 then, and must never be retried (the number may
 * already name another file), whatever it returned.
 *
 * Cancelling by descriptor needs Linux 5.19 (IORING_ASYNC_CANCEL_FD). On
 * older kernels a socket is shut down (shutdown(2), SHUT_RDWR) before the
 * close, which wakes its waiters (recv returns 0, accept an error, poll
 * POLLHUP), and the connection ends for every process sharing it; waiters on
 * other files are not woken there. Outside a task, mag_close is a plain
 * close(2) and cancels nothing. A plain close(2) of a descriptor that tasks
 * wait on cannot be seen by magpie: those tasks keep waiting on the file
 * (which stays open in the kernel while they do), so close descriptors that
 * tasks may be using with mag_close. An operation started on fd after
 * mag_close was called races the close, as with any use after close. */
MAG_API int mag_close(int fd);
/* fsync(2); returns 0. */
MAG_API int mag_fsync(int fd);
/* Waits until fd is ready for one of events (POLLIN, POLLOUT, ...) and
 * returns the ready events (revents, > 0; POLLHUP/POLLERR included). */
MAG_API int mag_poll(int fd, short events);

/* ---- sockets -------------------------------------------------------------
 * Every socket is created blocking and close-on-exec. */

/* A TCP listener with SO_REUSEADDR, bound to host:port. host NULL or "" means
 * every address: "::" dual-stack (IPv4 clients too), or 0.0.0.0 where IPv6
 * is unavailable. host may be a numeric IPv4/IPv6 address or a name (resolved
 * as mag_tcp_connect does; the first address that binds wins). port 0 lets
 * the kernel choose (see mag_local_port). backlog <= 0 means SOMAXCONN.
 * Returns the descriptor, or -EADDRINUSE, -EACCES, -ENOENT (unknown name),
 * -EADDRNOTAVAIL, ... Suspends only while resolving a name. */
MAG_API int mag_tcp_listen(const char *host, uint16_t port, int backlog);
/* A TCP connection to host:port, with TCP_NODELAY set. Numeric addresses are
 * used directly; names are looked up (getaddrinfo) on another thread, never
 * on a worker, and each address is tried in order until one connects.
 * Returns the descriptor or a negative errno: -EINVAL (NULL/empty host, port
 * 0), -ECONNREFUSED, -ENETUNREACH, ... of the last address tried, or a lookup
 * failure mapped as mag_resolve_error documents (-ENOENT for an unknown
 * name). Suspends while resolving and connecting. */
MAG_API int mag_tcp_connect(const char *host, uint16_t port);
/* A Unix stream listener at path. A stale socket file at path is removed
 * first (anything else there gives -EADDRINUSE). A path starting with '@'
 * names an abstract socket (no file). -ENAMETOOLONG past 107 bytes, -EINVAL
 * for NULL or "". backlog <= 0 means SOMAXCONN. */
MAG_API int mag_unix_listen(const char *path, int backlog);
/* A Unix stream connection to path ('@' as above). Suspends while
 * connecting. */
MAG_API int mag_unix_connect(const char *path);
/* The local port of a bound IPv4/IPv6 socket (for port 0), or a negative
 * errno (-EBADF, -ENOTSOCK, -EAFNOSUPPORT for other families). */
MAG_API int mag_local_port(int fd);

/* How host-name lookup failures are reported (getaddrinfo's EAI_* codes):
 * EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY, EAI_SERVICE -> -ENOENT;
 * EAI_AGAIN -> -EAGAIN; EAI_MEMORY -> -ENOMEM; EAI_FAIL -> -EIO;
 * EAI_SYSTEM -> the system errno; anything else -> -EINVAL.
 * This function performs that mapping for callers that use getaddrinfo. */
MAG_API int mag_resolve_error(int eai);

/* The connection handler of mag_serve: runs as its own task with the
 * accepted descriptor, which mag_serve closes after the handler returns (do
 * not close it yourself; a stream on it borrows it: MAG_STREAM_BORROW).
 * Its return value is ignored. */
typedef int (*mag_conn_fn)(int fd, void *ctx);

/* asyncio.start_server: accepts connections on listen_fd until the calling
 * task is cancelled (or its deadline passes), each in a new task running
 * handler(fd, ctx). Accepting uses one multishot accept on the ring. When
 * accept fails for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) the server sleeps (1 ms, doubling to 128 ms while the failure
 * lasts) and keeps going, and on EMFILE or ENFILE first closes connections
 * idle for a second or more (see max_conns below); transient network
 * errors are skipped.
 * On cancellation it stops accepting, cancels every connection task still
 * running and waits for them to return (so ctx may be freed afterwards),
 * then returns -ECANCELED (-ETIMEDOUT). It returns earlier only on a fatal
 * listener error (-EBADF, -EINVAL, -ENOTSOCK), also after draining its
 * connections. -EINVAL for a NULL handler, -EPERM outside a task. listen_fd
 * is not closed. */
MAG_API int mag_serve(int listen_fd, mag_conn_fn handler, void *ctx);

typedef struct mag_serve_opts {
    /* Graceful stop: on cancellation, stop accepting, shut the read side of
     * every live connection (an idle keep-alive connection sees end of
     * input; a handler busy with a request finishes it and sends its
     * answer), and give the handlers up to grace_ns to return before they
     * are cancelled. 0: cancel them at once, as mag_serve does. */
    uint64_t grace_ns;

    /* Timeouts (0: none). They bound the waits of the connection task on
     * its own descriptor, that is every operation the handler's task runs on
     * fd (mag_recv, mag_send, mag_stream_* on it, ...); time spent between
     * operations (computing, waiting for anything else) is never counted.
     * Which bound a wait for input gets depends on the connection's phase
     * (mag_conn_phase below):
     *   - until the first byte has arrived, whatever the phase: the
     *     header timeout, counted from the accept (the first-byte timeout);
     *   - MAG_CONN_ACTIVE (the phase a connection starts in): the idle
     *     timeout, counted from the start of each wait;
     *   - MAG_CONN_IDLE: the idle timeout, counted from when the phase began
     *     (nginx's keepalive_timeout);
     *   - MAG_CONN_HEADER: the header timeout, counted from when the phase
     *     began, over all the reads of the head (client_header_timeout: a
     *     client that dribbles a byte at a time is still cut).
     * Every send is bounded by the send timeout, counted from its start, in
     * every phase (send_timeout: a client that does not read is cut).
     * When a wait passes its bound, the server shuts the socket down both
     * ways: the blocked mag_recv returns 0 (end of input) and mag_send
     * -EPIPE, and so does every later operation on it; a cut send also
     * resets the connection on close (SO_LINGER 0), so that its unsent data
     * is dropped at once. The handler is not cancelled: it returns as for a
     * client that went away, and the server closes fd as always. A sweep
     * every quarter of the shortest timeout (at most 100 ms, at least 5 ms)
     * finds such waits: a connection is cut at most that much after its
     * bound, and the per-request path makes no system call for it. */
    uint64_t header_timeout_ns;
    uint64_t idle_timeout_ns;
    uint64_t send_timeout_ns;
    /* At most this many connection tasks at once (0: no cap). At the cap the
     * server stops accepting (new clients wait in the listen backlog) and
     * resumes when a connection ends. Independently of it, when accept fails
     * with EMFILE or ENFILE the server cuts (as above) the connections that
     * have been idle the longest, as nginx does: at least one, an eighth of
     * those idle for a second or more, at most 32 per failure. Idle means
     * waiting for input: before the first byte, in MAG_CONN_IDLE, or in
     * MAG_CONN_ACTIVE (counted from the start of that wait); a connection
     * in MAG_CONN_HEADER or sending is never taken, nor one idle for less
     * than a second (that would only churn through a flood of new ones).
     * Only when none qualifies does it back off as mag_serve describes.
     * mag_serve does the same. */
    size_t max_conns;
    /* The connection tasks' name (NULL: "conn"; each task copies it, but
     * the string must stay valid while mag_serve_ex runs) and stack size
     * (0: the runtime's default; else MAG_STACK_MIN..MAG_STACK_MAX, or
     * mag_serve_ex returns -EINVAL at once). */
    const char *conn_name;
    size_t conn_stack_size;
} mag_serve_opts_t;

/* mag_serve with options (opts NULL: mag_serve). Returns as mag_serve, and
 * -EINVAL for a conn_stack_size out of range (before accepting anything). */
MAG_API int mag_serve_ex(int listen_fd, mag_conn_fn handler, void *ctx,
                         const mag_serve_opts_t *opts);

/* What a connection is doing, as its handler tells mag_serve_ex (see the
 * timeouts above). A handler that never says keeps MAG_CONN_ACTIVE: a
 * first-byte bound, then the idle timeout on each wait for input. */
typedef enum mag_conn_phase {
    MAG_CONN_ACTIVE = 0, /* in a request (reading a body, answering), or a plain stream */
    MAG_CONN_IDLE,       /* between requests: waiting for the next one */
    MAG_CONN_HEADER,     /* part of a request head has arrived: reading the rest */
} mag_conn_phase_t;

/* Puts the calling connection task in phase. Setting the phase it is
 * already in changes nothing (the phase keeps the time it began), so a
 * handler may say it before every read; an HTTP handler says IDLE when its
 * buffer is empty, HEADER when it holds part of a head, and ACTIVE once a
 * request is complete (so that the next head's clock starts afresh). Does
 * not suspend and makes no system call. Returns 0, -EINVAL for an unknown
 * phase, -EPERM when the caller is not the task mag_serve started for a
 * connection (a plain thread, another task, or a task that handler
 * spawned). */
MAG_API int mag_conn_phase(mag_conn_phase_t phase);

/* ---- more socket calls ---------------------------------------------------
 * Same conventions as the operations above: one ring request from a task
 * (cancellation and deadlines as at the top of this file), the blocking
 * system call on a plain thread. */

/* sendmsg(2) with MSG_NOSIGNAL always added (a closed peer gives -EPIPE,
 * never SIGPIPE); control data (SCM_RIGHTS, SCM_CREDENTIALS, ...) goes with
 * it. May send fewer bytes than msg's iovecs hold. Returns the count;
 * -EFAULT for a NULL msg. */
MAG_API ssize_t mag_sendmsg(int fd, const struct msghdr *msg, int flags);
/* recvmsg(2) with MSG_CMSG_CLOEXEC always added: descriptors received in
 * SCM_RIGHTS are close-on-exec. Returns the count (0 when the peer has shut
 * its side down; msg_flags and msg_controllen are updated as by recvmsg);
 * -EFAULT for a NULL msg. */
MAG_API ssize_t mag_recvmsg(int fd, struct msghdr *msg, int flags);
/* Sends everything iov[0..cnt) holds, in order, on a socket (sendmsg with
 * MSG_NOSIGNAL, again after each short send: never SIGPIPE). The caller's
 * array is not modified (the call advances through a copy). Returns the total
 * byte count, or the first error: -EPIPE / -ECONNRESET when the peer is gone,
 * -ENOTSOCK for a file or a pipe, -EINVAL when cnt is outside 0..IOV_MAX or
 * the lengths add up past SSIZE_MAX, -EFAULT for a NULL iov with cnt > 0,
 * -ECANCELED / -ETIMEDOUT. After an error some bytes may have been sent
 * (how many is not reported): the connection is then only good for closing. */
MAG_API ssize_t mag_sendv_all(int fd, const struct iovec *iov, int cnt, int flags);
/* shutdown(2): SHUT_RD, SHUT_WR (the peer reads end of input once the data
 * sent before it is read) or SHUT_RDWR. On the ring (IORING_OP_SHUTDOWN)
 * where the kernel has it, else the system call itself (it never blocks).
 * Returns 0, -EBADF (fd < 0 or not open), -EINVAL (another how),
 * -ENOTSOCK, -ENOTCONN. */
MAG_API int mag_shutdown(int fd, int how);

/* ---- plain system calls on magpie's descriptors -------------------------
 * Descriptors magpie returns are ordinary, blocking, close-on-exec ones.
 *
 * Fine from a task: system calls that never wait. setsockopt, getsockopt,
 * getsockname, getpeername, fcntl (F_GETFL, F_SETFD, F_GETFD, ...),
 * ioctl(FIONREAD), fstat, lseek, dup, shutdown (mag_shutdown does it on the
 * ring), socket, bind, listen, pipe2, socketpair.
 *
 * Not on a worker: calls that wait. read, write, recv, send, accept,
 * connect, poll, select, epoll_wait, sleep, flock, waitpid and the like
 * block the worker thread and every task queued behind it (with MAG_DEBUG
 * the watchdog names the task that holds a worker too long). Use the mag_
 * forms, or mag_run_blocking for a library call that blocks. Do not set
 * O_NONBLOCK for magpie's sake: the ring does not need it, and plain threads
 * would then get -EAGAIN instead of a wait.
 *
 * close(2): not while a magpie operation waits on the descriptor (the
 * request keeps the file open, and the number may be reused under it; a
 * socket's receive waiting for readiness, with several workers, would wait
 * until cancelled); cancel those tasks, then mag_close. mag_close, from a
 * task or a plain thread, ends a receive waiting on the socket with -EBADF.
 *
 * Signals and fork: a signal handler may run on a worker thread; it must
 * call no magpie function (act on signals with mag_signal_wait). A fork(2)
 * child has one thread and none of the runtime's: it may call only
 * async-signal-safe functions until it execs (mag_process_spawn does this
 * for you). Sockets never raise SIGPIPE through mag_send, mag_sendto,
 * mag_sendmsg, mag_send_all, mag_sendv_all and streams; write(2), writev(2),
 * mag_write and mag_writev on a socket whose peer is gone do, unless the
 * program ignores SIGPIPE. */

/* ---- the file system -----------------------------------------------------
 * The *at(2) calls, relative to a directory descriptor (AT_FDCWD: the
 * working directory; an absolute path ignores dirfd). From a task they are
 * one ring request each (IORING_OP_OPENAT, _STATX, _UNLINKAT, _RENAMEAT,
 * _MKDIRAT; cancellation and deadlines as at the top of this file). Where the
 * running kernel lacks the opcode (asked once, io_uring_get_probe), the
 * system call runs on the blocking pool instead, so that a slow disk never
 * blocks a worker: there a task already cancelled (or past its deadline)
 * gets -ECANCELED (-ETIMEDOUT) and nothing is done, and a call under way is
 * waited for (its result returned; the next suspension point reports the
 * cancellation). On a plain thread they are the blocking system calls.
 * A NULL path (or statx's NULL out) gives -EFAULT, as the kernel says for a
 * bad pointer; other errors are the kernel's: -ENOENT, -EEXIST, -ENOTDIR,
 * -EISDIR, -ENOTEMPTY, -EACCES, -EBADF (a bad dirfd), ... */

/* openat(2); returns the descriptor. flags are passed as given (add
 * O_CLOEXEC yourself); mode matters with O_CREAT / O_TMPFILE. */
MAG_API int mag_openat(int dirfd, const char *path, int flags, mode_t mode);
/* statx(2) into *out (struct statx of <sys/stat.h>, _GNU_SOURCE); flags
 * AT_EMPTY_PATH (path "" means dirfd itself), AT_SYMLINK_NOFOLLOW,
 * AT_STATX_*; mask STATX_BASIC_STATS and the like (out->stx_mask says what
 * was filled). Returns 0; *out is untouched by any failure. */
struct statx;
MAG_API int mag_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out);
/* unlinkat(2): removes a file, or an empty directory with AT_REMOVEDIR.
 * Returns 0; -EISDIR for a directory without AT_REMOVEDIR, -ENOTDIR for a
 * file with it, -ENOTEMPTY. */
MAG_API int mag_unlinkat(int dirfd, const char *path, int flags);
/* renameat2(2): flags 0, RENAME_NOREPLACE (-EEXIST when newpath exists),
 * RENAME_EXCHANGE, ... Returns 0. */
MAG_API int mag_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                         unsigned flags);
/* mkdirat(2); returns 0, -EEXIST. */
MAG_API int mag_mkdirat(int dirfd, const char *path, mode_t mode);

/* ---- directory reading ----------------------------------------------------
 * io_uring cannot read a directory, so a reader takes the entries in batches
 * of one getdents64(2) each (32 KiB: about a thousand short names), run on
 * the blocking pool from a task (the task suspends; the worker runs others)
 * and on the calling thread outside a task. Between batches mag_readdir
 * makes no system call. "." and ".." are left out. A reader is used by one
 * task or thread at a time. */
typedef struct mag_dir mag_dir_t;

/* One entry. name is valid until the next mag_readdir or mag_closedir on
 * the reader; type is DT_REG, DT_DIR, DT_LNK, ... of <dirent.h>, or
 * DT_UNKNOWN when the file system does not say (ask mag_statx). */
typedef struct mag_dirent {
    const char *name;
    uint64_t ino;
    unsigned char type;
} mag_dirent_t;

/* Opens the directory path (relative to dirfd, as mag_openat) for reading:
 * 0 and *out, or -EINVAL (NULL out), -EFAULT (NULL path), -ENOENT, -ENOTDIR,
 * -EACCES, -EMFILE, -ENOMEM, -ECANCELED / -ETIMEDOUT; *out is untouched on
 * failure. Suspends a task while opening. */
MAG_API int mag_opendir(mag_dir_t **out, int dirfd, const char *path);
/* The next entry: 1 and *out, 0 at the end (and on every later call), or a
 * negative errno (-EINVAL for NULL arguments, -ECANCELED / -ETIMEDOUT for a
 * task cancelled before a batch is read, the kernel's -EIO, ...); *out is
 * written only when it returns 1. After an error the reader is still usable:
 * the next call tries again. Entries created or removed while the directory
 * is being read may or may not be listed (as readdir(3)). Suspends a task
 * only when the buffer is empty: while the batch is read it waits for it,
 * even when cancelled meanwhile (the next suspension point reports it). */
MAG_API int mag_readdir(mag_dir_t *d, mag_dirent_t *out);
/* The reader's directory descriptor, for mag_openat / mag_statx relative to
 * it (owned by the reader: do not close it); -EINVAL for NULL. */
MAG_API int mag_dir_fd(const mag_dir_t *d);
/* Closes the descriptor (mag_close) and frees d. 0 or mag_close's error;
 * NULL is ignored (0). */
MAG_API int mag_closedir(mag_dir_t *d);

/* ---- buffered streams (asyncio StreamReader / StreamWriter) -------------
 * A stream wraps a descriptor in two buffers of bufsize bytes, one for
 * reading and one for writing. Reads use recv(2) and writes send(2) or
 * sendmsg(2) with MSG_NOSIGNAL on sockets (a closed peer gives -EPIPE, never
 * SIGPIPE), read(2)/write(2)/writev(2) on anything else (a pipe whose reader
 * is gone raises SIGPIPE, as write(2) does). None of the calls needs a task:
 * from a plain thread they block, as the operations above do.
 *
 * Ownership, the one rule: whether a stream owns its descriptor is chosen
 * when it is made, and mag_stream_close is the only way to end it.
 *   - mag_stream_new(fd, ...) owns fd: mag_stream_close closes it, and
 *     nobody else may close it.
 *   - mag_stream_new_ex(fd, ..., MAG_STREAM_BORROW) borrows fd:
 *     mag_stream_close flushes and frees the stream and leaves fd open for
 *     its owner to close, after the stream is closed. A mag_serve handler's
 *     descriptor belongs to mag_serve, which closes it when the handler
 *     returns: a handler borrows it.
 *
 * Two tasks at once: a stream has a read side (mag_stream_read, _read_exact,
 * _read_until, _peek, _consume, _fill, _buffered) and a write side
 * (mag_stream_write, _writev, _flush), with separate buffers and no state in
 * common, so one task may use the read side while another uses the write
 * side (a chat server's reader and writer on one connection). Each side is
 * used by one task at a time. mag_stream_close runs when neither side is in
 * use any more. */
typedef struct mag_stream mag_stream_t;

#define MAG_STREAM_DEFAULT_BUFSIZE 16384u
/* mag_stream_new_ex flag: the stream borrows fd and never closes it. */
#define MAG_STREAM_BORROW 1u
/* The most bytes mag_stream_fill gathers in the read buffer (16 MiB). */
#define MAG_STREAM_FILL_MAX ((size_t)16 << 20)

/* A stream that owns fd. bufsize 0 means MAG_STREAM_DEFAULT_BUFSIZE, and at
 * most MAG_STREAM_FILL_MAX. NULL when fd < 0, bufsize is over that, or out
 * of memory. Does not suspend. */
MAG_API mag_stream_t *mag_stream_new(int fd, size_t bufsize);
/* mag_stream_new with flags: 0 (owns fd, as mag_stream_new) or
 * MAG_STREAM_BORROW (borrows it). NULL when fd < 0, bufsize is over
 * MAG_STREAM_FILL_MAX, for an unknown flag, or out of memory. Does not
 * suspend. */
MAG_API mag_stream_t *mag_stream_new_ex(int fd, size_t bufsize, unsigned flags);
/* The stream's descriptor. */
MAG_API int mag_stream_fd(const mag_stream_t *s);
/* Up to n bytes: what is buffered, else one read. 0 at EOF. */
MAG_API ssize_t mag_stream_read(mag_stream_t *s, void *buf, size_t n);
/* Exactly n bytes, or -EPIPE when EOF comes first. For n <= bufsize nothing
 * is consumed on failure (-EPIPE, -ECANCELED, ...): the bytes stay buffered.
 * For larger n, bytes read before a failure are lost. */
MAG_API ssize_t mag_stream_read_exact(mag_stream_t *s, void *buf, size_t n);
/* Bytes up to and including the first delim, at most max of them (the
 * buffer grows to max when max > bufsize). Returns the count (delim
 * included). -EMSGSIZE when max bytes hold no delim; -EPIPE when EOF comes
 * after some bytes but before delim; 0 at a clean EOF. On any failure nothing
 * is consumed: mag_stream_read can still take the bytes. */
MAG_API ssize_t mag_stream_read_until(mag_stream_t *s, int delim, void *buf, size_t max);
/* Bytes buffered for reading (no syscall). */
MAG_API size_t mag_stream_buffered(const mag_stream_t *s);

/* Parsing in place. A parser looks at the buffered bytes themselves
 * (mag_stream_peek), takes what it has parsed (mag_stream_consume), and asks
 * for more when a message is incomplete (mag_stream_fill). A pipelining
 * server answers every complete request in the buffer, then flushes once:
 *
 *     for (;;) {
 *         const char *p; size_t len;
 *         ssize_t n = mag_stream_peek(s, &p, &len);   // reads only if empty
 *         if (n <= 0) break;                           // EOF or error
 *         size_t used;
 *         while ((used = parse_and_answer(s, p, len)) > 0) {   // writes
 *             mag_stream_consume(s, used);
 *             p += used; len -= used;
 *         }
 *         if (mag_stream_flush(s) < 0) break;          // one flush per batch
 *         if (len > 0 && mag_stream_fill(s, len + 1) <= 0) break; // partial
 *     }
 *
 * The pointer from mag_stream_peek stays valid, and the bytes unchanged,
 * until the next call on the read side other than mag_stream_consume. */

/* Sets *data and *len to the buffered bytes and returns their count. When
 * nothing is buffered it first reads once (suspends): the count then, or 0
 * at EOF (*len 0, *data a valid pointer). -EINVAL when s, data or len is
 * NULL; a read error (-ECANCELED, -ETIMEDOUT, -ECONNRESET, ...) as is. On
 * any error *data and *len are untouched. */
MAG_API ssize_t mag_stream_peek(mag_stream_t *s, const char **data, size_t *len);
/* Drops the first n buffered bytes (a parser's "taken"). No syscall, never
 * suspends. 0, or -EINVAL (s NULL, n more than mag_stream_buffered) with
 * nothing dropped. */
MAG_API int mag_stream_consume(mag_stream_t *s, size_t n);
/* Reads until at least min bytes are buffered, compacting the buffer and
 * growing it (doubling, up to MAG_STREAM_FILL_MAX) as needed; a read may
 * bring more than min. Returns the buffered count (>= min; no read at all
 * when min bytes are already there, so min 0 never reads), 0 at EOF with
 * nothing buffered, -EPIPE when EOF comes after some bytes but fewer than
 * min, -EMSGSIZE when min > MAG_STREAM_FILL_MAX (nothing read), -EINVAL for
 * s NULL, -ENOMEM, or a read error. Nothing buffered is ever lost: after a
 * failure mag_stream_peek still shows every byte. */
MAG_API ssize_t mag_stream_fill(mag_stream_t *s, size_t min);

/* Buffers n bytes, writing out what does not fit. Returns n or an error
 * (then the stream is broken: later writes return the same error). */
MAG_API ssize_t mag_stream_write(mag_stream_t *s, const void *buf, size_t n);
/* Writes iov[0..cnt) in order, as one stream of bytes. Pieces shorter than
 * bufsize/2 are copied into the write buffer, as mag_stream_write does;
 * longer ones are not copied: they go from where they lie, gathered with
 * the buffered bytes before them (and the short pieces after them) into one
 * sendmsg (writev(2) on other files). When any piece went that way, the call
 * returns only once everything buffered is written out; otherwise the
 * pieces stay buffered for mag_stream_flush. Returns the total of the
 * lengths, or an error: -EINVAL (s NULL, cnt outside 0..IOV_MAX, iov NULL
 * with cnt > 0, a NULL base with a nonzero length, a total above SSIZE_MAX;
 * nothing buffered nor written then), -EPIPE when the peer is gone, ...
 * After any other error, cancellation and deadlines included, part of the
 * pieces may have gone out: the write side is broken and later writes,
 * writevs and flushes return that error. */
MAG_API ssize_t mag_stream_writev(mag_stream_t *s, const struct iovec *iov, int cnt);
/* Writes out everything buffered (asyncio's drain). */
MAG_API int mag_stream_flush(mag_stream_t *s);
/* Flushes, closes fd when the stream owns it (never when it borrows it),
 * and frees s, even when the flush fails (its error is returned) or the
 * task is cancelled. s NULL is ignored (0). */
MAG_API int mag_stream_close(mag_stream_t *s);

#ifdef __cplusplus
}
#endif

/* ---- subprocesses and signals --------------------------------------------
 * (asyncio.create_subprocess_exec and loop.add_signal_handler, tokio::process
 * and tokio::signal.) */
#include <signal.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mag_process mag_process_t;

/* What a child's stdin, stdout or stderr is connected to. */
typedef enum mag_stdio {
    MAG_STDIO_INHERIT = 0, /* the parent's own descriptor (the default) */
    MAG_STDIO_PIPE,        /* a pipe; the parent's end from mag_process_stdin/out/err */
    MAG_STDIO_NULL,        /* /dev/null */
} mag_stdio_t;

typedef struct mag_process_opts {
    mag_stdio_t in, out, err; /* the child's stdin, stdout, stderr */
    const char *const *envp;  /* NULL-terminated "NAME=value" list; NULL: inherit */
    const char *cwd;          /* working directory; NULL: inherit */
} mag_process_opts_t;

/* Starts argv[0] with arguments argv (NULL-terminated), found through PATH
 * when it contains no '/' (execvp's rules, with the parent's PATH). opts NULL
 * means every stdio inherited. The child starts with no signal blocked and
 * every signal at its default action; it inherits the parent's descriptors
 * that are not close-on-exec (magpie opens all of its own close-on-exec).
 *
 * Pipes are blocking descriptors that work with mag_read / mag_write (on the
 * ring from a task); the process owns them (closed by mag_process_free). So
 * that a write to a child that has exited gives -EPIPE instead of killing
 * the parent, the first spawn with a stdin pipe sets SIGPIPE to SIG_IGN if
 * it was SIG_DFL (Python and Rust programs run that way; children get the
 * default back).
 *
 * Returns 0 and *out, or -EINVAL (NULL out or argv, argv[0] NULL, a bad
 * mode), -ENOENT (no such program, or cwd missing), -EACCES, -ENOEXEC,
 * -ENOMEM, -EMFILE: errors of the exec itself are reported here. Does not
 * suspend: it blocks the calling thread for the clone and exec (a vfork,
 * well under a millisecond). Reaping is magpie's: do not waitpid(-1, ...)
 * nor set SIGCHLD to SIG_IGN in a process that uses mag_process_*. */
MAG_API int mag_process_spawn(mag_process_t **out, const char *const argv[],
                              const mag_process_opts_t *opts);

/* The child's pid (for logs; signal it with mag_process_kill). */
MAG_API pid_t mag_process_pid(const mag_process_t *p);
/* The parent's end of the child's stdin (write to it), stdout or stderr
 * (read from them) pipe, or -1 without a pipe (or after close_stdin). */
MAG_API int mag_process_stdin(const mag_process_t *p);
MAG_API int mag_process_stdout(const mag_process_t *p);
MAG_API int mag_process_stderr(const mag_process_t *p);
/* Closes the stdin pipe: the child reads EOF. 0, or -EBADF without one. */
MAG_API int mag_process_close_stdin(mag_process_t *p);

/* Waits for the child to exit: a poll of its pidfd on the ring, then
 * waitid. Suspends a task; blocks a plain thread. *wstatus (if not NULL) is
 * a waitpid(2) status (WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG). Once
 * it has returned 0, later calls return the same status at once. Returns 0,
 * -EINVAL, or -ECANCELED / -ETIMEDOUT (the child keeps running). One task
 * waits for a given process at a time. */
MAG_API int mag_process_wait(mag_process_t *p, int *wstatus);

/* Sends sig through the pidfd: never a recycled pid. 0, -EINVAL, or -ESRCH
 * once the child has been waited for. Any thread. */
MAG_API int mag_process_kill(mag_process_t *p, int sig);

/* Closes the pipes and frees p. A child not yet waited for is killed with
 * SIGKILL and reaped first (blocking the thread for that moment), so that
 * no zombie is left. p NULL is ignored. */
MAG_API void mag_process_free(mag_process_t *p);

/* sigset_t is POSIX, not ISO C: a strictly conforming compilation (gcc
 * -std=c11 with no feature-test macro) has no sigset_t, nor the sigemptyset
 * and sigaddset that fill one, so it could not call these two anyway. They
 * are declared whenever the C library shows its POSIX interfaces: by default
 * (gnu11, C++), or when the program asks for them with a feature-test macro
 * before its first #include, e.g. -D_POSIX_C_SOURCE=200809L. This header
 * defines no feature-test macro itself: one defined after the program's own
 * system headers would not take effect, and it would change what those
 * headers declare for the program. */
#if !defined(__STRICT_ANSI__) || defined(_POSIX_C_SOURCE) || defined(_POSIX_SOURCE) ||             \
    defined(_XOPEN_SOURCE) || defined(_GNU_SOURCE) || defined(_DEFAULT_SOURCE) ||                  \
    defined(_BSD_SOURCE)

/* Waits until one of the signals in set is delivered to the process, and
 * stores its number in *signo. Suspends a task (a read on the ring);
 * blocks a plain thread. Returns 0, -EINVAL (NULL arguments, an empty set,
 * SIGKILL, SIGSTOP, or a fault signal: SIGSEGV, SIGBUS, SIGILL, SIGFPE,
 * SIGTRAP, SIGSYS), -ECANCELED / -ETIMEDOUT, or -EAGAIN with more than 64
 * waits at once.
 *
 * How it works, and what it asks of the program: magpie installs a handler
 * (SA_RESTART) for each signal of set, the first time one is waited for or
 * caught (mag_signal_catch). The handler counts the delivery and wakes the
 * waiters through an eventfd, so it works whichever thread the kernel picks:
 * nothing has to be blocked anywhere. Each delivery is taken by exactly one
 * wait (the lowest-numbered pending signal of its set first); deliveries
 * that arrive while nobody waits are kept and returned by the next wait
 * (the kernel merges a signal sent again before the handler ran). From then
 * on those signals no longer have their default action in this process (as
 * with tokio::signal): a program that catches SIGINT must act on it. Do not
 * block the signals in every thread (the handler would never run); magpie's
 * own blocking-pool threads block them, worker threads do not. */
MAG_API int mag_signal_wait(const sigset_t *set, int *signo);

/* Installs the handlers for set now, without waiting, so that a signal that
 * arrives before the first mag_signal_wait is kept for it instead of taking
 * its default action (call it at start-up, e.g. for SIGINT and SIGTERM).
 * 0 or -EINVAL as mag_signal_wait. Any thread, no runtime needed. */
MAG_API int mag_signal_catch(const sigset_t *set);
#endif /* POSIX visible */

#ifdef __cplusplus
}
#endif
#endif /* MAGPIE_IO_H */
