/*
 * magtop - a live view of a magpie runtime's metrics, refreshed every second.
 *
 *   magtop [--once] /path/to.sock
 *
 * The runtime must run with MAG_STATS=/path/to.sock. magtop asks it for a
 * metrics snapshot ("metrics\n" on the socket, one JSON line back) once a
 * second and draws per-worker busy %, queue depths, steal and I/O rates, the
 * blocking and process pools, and the tasks running longest right now.
 * q (or Ctrl-C) quits; so does the runtime going away. Plain ANSI escapes,
 * no curses. --once prints one frame (rates over one second) without
 * touching the terminal, for scripts.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* ---- a small JSON reader: enough for the stats line ---------------------- */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
    int type;
    double num;
    char *str; /* J_STR; the key of an object member in key */
    char *key;
    struct jv *first; /* J_ARR / J_OBJ children */
    struct jv *next;
} jv_t;

typedef struct jparse {
    const char *p;
    bool bad;
} jparse_t;

static void jfree(jv_t *v)
{
    while (v) {
        jv_t *next = v->next;
        jfree(v->first);
        free(v->str);
        free(v->key);
        free(v);
        v = next;
    }
}

static void skip_ws(jparse_t *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static char *parse_string(jparse_t *j)
{
    if (*j->p != '"') {
        j->bad = true;
        return NULL;
    }
    j->p++;
    size_t cap = 32, n = 0;
    char *s = malloc(cap);
    while (s && *j->p && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            c = *j->p++;
            if (c == 'u') {
                unsigned x = 0;
                for (int i = 0; i < 4 && *j->p; i++, j->p++)
                    x = x * 16 + (unsigned)(*j->p <= '9' ? *j->p - '0' : (*j->p | 32) - 'a' + 10);
                c = x < 0x80 ? (char)x : '?';
            } else if (c == 'n') {
                c = '\n';
            } else if (c == 't') {
                c = '\t';
            } else if (!c) {
                break;
            }
        }
        if (n + 2 > cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
        }
        s[n++] = c;
    }
    if (!s || *j->p != '"') {
        free(s);
        j->bad = true;
        return NULL;
    }
    j->p++;
    s[n] = 0;
    return s;
}

static jv_t *parse_value(jparse_t *j, int depth)
{
    skip_ws(j);
    jv_t *v = calloc(1, sizeof *v);
    if (!v || depth > 16) {
        free(v);
        j->bad = true;
        return NULL;
    }
    char c = *j->p;
    if (c == '{' || c == '[') {
        v->type = c == '{' ? J_OBJ : J_ARR;
        j->p++;
        jv_t **tail = &v->first;
        skip_ws(j);
        if (*j->p == (c == '{' ? '}' : ']')) {
            j->p++;
            return v;
        }
        for (;;) {
            char *key = NULL;
            skip_ws(j);
            if (v->type == J_OBJ) {
                key = parse_string(j);
                skip_ws(j);
                if (j->bad || *j->p++ != ':') {
                    free(key);
                    j->bad = true;
                    break;
                }
            }
            jv_t *kid = parse_value(j, depth + 1);
            if (!kid) {
                free(key);
                break;
            }
            kid->key = key;
            *tail = kid;
            tail = &kid->next;
            skip_ws(j);
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p++ != (v->type == J_OBJ ? '}' : ']'))
                j->bad = true;
            break;
        }
        if (j->bad) {
            jfree(v);
            return NULL;
        }
        return v;
    }
    if (c == '"') {
        v->type = J_STR;
        v->str = parse_string(j);
    } else if (!strncmp(j->p, "true", 4) || !strncmp(j->p, "false", 5)) {
        v->type = J_BOOL;
        v->num = c == 't';
        j->p += c == 't' ? 4 : 5;
    } else if (!strncmp(j->p, "null", 4)) {
        j->p += 4;
    } else {
        char *end;
        v->type = J_NUM;
        v->num = strtod(j->p, &end);
        if (end == j->p)
            j->bad = true;
        j->p = end;
    }
    if (j->bad) {
        jfree(v);
        return NULL;
    }
    return v;
}

static jv_t *jget(const jv_t *o, const char *key)
{
    for (jv_t *k = o ? o->first : NULL; k; k = k->next)
        if (k->key && !strcmp(k->key, key))
            return k;
    return NULL;
}

static double jnum(const jv_t *o, const char *key)
{
    jv_t *v = jget(o, key);
    return v && (v->type == J_NUM || v->type == J_BOOL) ? v->num : 0;
}

static const char *jstr(const jv_t *o, const char *key)
{
    jv_t *v = jget(o, key);
    return v && v->type == J_STR && v->str ? v->str : "";
}

static const jv_t *jat(const jv_t *a, unsigned i)
{
    const jv_t *k = a ? a->first : NULL;
    while (k && i--)
        k = k->next;
    return k;
}

/* ---- talking to the runtime ------------------------------------------------ */

static int connect_to(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* One snapshot, or NULL when the runtime went away or answered nonsense. */
static jv_t *fetch(int fd)
{
    if (send(fd, "metrics\n", 8, MSG_NOSIGNAL) != 8)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 3000) <= 0)
            break; /* a runtime that does not answer in 3 s is as good as gone */
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(buf + n - (size_t)r, '\n', (size_t)r)) {
            buf[n] = 0;
            jparse_t j = {.p = buf};
            jv_t *v = parse_value(&j, 0);
            free(buf);
            return v;
        }
        if (n + 1 == cap) {
            char *t = realloc(buf, cap *= 2);
            if (!t)
                break;
            buf = t;
        }
    }
    free(buf);
    return NULL;
}

/* ---- drawing --------------------------------------------------------------- */

static bool tty;
static struct termios saved_tio;
static volatile sig_atomic_t quit_signal;

static void on_signal(int sig)
{
    quit_signal = sig;
}

static void term_restore(void)
{
    if (!tty)
        return;
    fputs("\x1b[?25h\x1b[?1049l", stdout); /* cursor back, leave the alternate screen */
    fflush(stdout);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    tty = false;
}

static void term_setup(void)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) != 0)
        return;
    struct termios raw = saved_tio;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
    tty = true;
    atexit(term_restore);
    fputs("\x1b[?1049h\x1b[?25l", stdout);
}

static double rate(const jv_t *now, const jv_t *prev, const char *key, double secs)
{
    if (!prev || secs <= 0)
        return 0;
    double d = jnum(now, key) - jnum(prev, key);
    return d > 0 ? d / secs : 0;
}

static void fmt_dur(char *buf, size_t cap, double ns)
{
    if (ns < 1e6)
        snprintf(buf, cap, "%.0f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, cap, "%.1f ms", ns / 1e6);
    else
        snprintf(buf, cap, "%.2f s", ns / 1e9);
}

static void eol(FILE *o)
{
    fputs(tty ? "\x1b[K\n" : "\n", o); /* each line clears its own rest */
}

static void worker_row(FILE *o, const char *label, const jv_t *w, const jv_t *pw, double secs)
{
    double busy = 0;
    if (pw && secs > 0) {
        double db = jnum(w, "busy_ns") - jnum(pw, "busy_ns");
        double dp = jnum(w, "parked_ns") - jnum(pw, "parked_ns");
        if (db + dp > 0)
            busy = 100.0 * db / (db + dp);
    } else if (jnum(w, "busy_ns") + jnum(w, "parked_ns") > 0) {
        busy = 100.0 * jnum(w, "busy_ns") / (jnum(w, "busy_ns") + jnum(w, "parked_ns"));
    }
    fprintf(o, "%7s %6.1f%% %9.0f %6.0f %8.0f %9.0f %9.0f %10.0f %10.0f %7.0f %8.0f  %s", label,
            busy, rate(w, pw, "polls", secs), jnum(w, "queue_depth"),
            rate(w, pw, "lifo_hits", secs), rate(w, pw, "steals", secs),
            rate(w, pw, "stolen_tasks", secs), rate(w, pw, "io_submitted", secs),
            rate(w, pw, "io_completed", secs), jnum(w, "timers"), rate(w, pw, "parks", secs),
            jnum(w, "parked") ? "parked" : "running");
    eol(o);
}

static void draw(const char *path, const jv_t *m, const jv_t *prev, unsigned rows)
{
    FILE *o = stdout;
    double secs = prev ? (jnum(m, "now_ns") - jnum(prev, "now_ns")) / 1e9 : 0;
    unsigned n = (unsigned)jnum(m, "nworkers");
    const jv_t *ws = jget(m, "workers"), *pws = prev ? jget(prev, "workers") : NULL;
    if (tty)
        fputs("\x1b[H", o); /* home */
    fprintf(o, "magtop  pid %.0f  %s  up %.1f s  %u workers%s", jnum(m, "pid"), path,
            jnum(m, "uptime_ns") / 1e9, n, tty ? "   (q quits)" : "");
    eol(o);
    fprintf(o,
            "tasks: %.0f live, %.0f spawned (%.0f/s), %.0f completed (%.0f/s), inject queue %.0f",
            jnum(m, "live_tasks"), jnum(m, "spawned"), rate(m, prev, "spawned", secs),
            jnum(m, "completed"), rate(m, prev, "completed", secs), jnum(m, "inject_depth"));
    eol(o);
    const jv_t *b = jget(m, "blocking"), *pp = jget(m, "proc");
    const jv_t *pb = prev ? jget(prev, "blocking") : NULL, *ppp = prev ? jget(prev, "proc") : NULL;
    fprintf(o, "blocking pool: %.0f threads, %.0f busy, %.0f queued, %.0f jobs/s",
            jnum(b, "threads"), jnum(b, "busy"), jnum(b, "queued"), rate(b, pb, "jobs", secs));
    eol(o);
    fprintf(o, "process pool:  %.0f workers, %.0f busy, %.0f jobs/s, %.0f crashes",
            jnum(pp, "workers"), jnum(pp, "busy"), rate(pp, ppp, "jobs", secs),
            jnum(pp, "crashes"));
    eol(o);
    eol(o);
    fprintf(o, "%7s %7s %9s %6s %8s %9s %9s %10s %10s %7s %8s  %s", "worker", "busy", "polls/s",
            "queue", "lifo/s", "steals/s", "stolen/s", "io sub/s", "io done/s", "timers", "parks/s",
            "state");
    eol(o);
    unsigned shown = 0, room = rows > 16 ? rows - 16 : 4;
    for (unsigned i = 0; i < n; i++) {
        if (shown == room && n > room + 1) {
            fprintf(o, "%7s (%u more workers)", "...", n - i);
            eol(o);
            break;
        }
        char label[16];
        snprintf(label, sizeof label, "%u", i);
        worker_row(o, label, jat(ws, i), jat(pws, i), secs);
        shown++;
    }
    worker_row(o, "total", jget(m, "total"), prev ? jget(prev, "total") : NULL, secs);
    eol(o);
    /* The running tasks, longest first: what is holding each worker. */
    fputs("running now, longest first:", o);
    eol(o);
    bool listed[1024] = {0};
    unsigned nlisted = 0;
    for (unsigned k = 0; k < 8 && k < n; k++) {
        int best = -1;
        for (unsigned i = 0; i < n && i < 1024; i++) {
            const jv_t *w = jat(ws, i);
            if (listed[i] || !jnum(w, "task_id"))
                continue;
            if (best < 0 || jnum(w, "task_run_ns") > jnum(jat(ws, (unsigned)best), "task_run_ns"))
                best = (int)i;
        }
        if (best < 0)
            break;
        listed[best] = true;
        const jv_t *w = jat(ws, (unsigned)best);
        char d[32];
        fmt_dur(d, sizeof d, jnum(w, "task_run_ns"));
        const char *name = jstr(w, "task_name");
        fprintf(o, "  worker %-3d %-24s id %-10.0f running for %s", best,
                name[0] ? name : "(unnamed)", jnum(w, "task_id"), d);
        eol(o);
        nlisted++;
    }
    if (!nlisted) {
        fputs("  (none, or the runtime does not track runs)", o);
        eol(o);
    }
    if (tty)
        fputs("\x1b[J", o); /* clear what is left below */
    fflush(o);
}

static unsigned term_rows(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row)
        return ws.ws_row;
    return 40;
}

/* Waits up to ms for a key; true when it was q. */
static bool wait_key(int ms)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (quit_signal)
            return true;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left =
            ms - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&p, tty ? 1 : 0, (int)left);
        if (r > 0) {
            char c;
            ssize_t n = read(STDIN_FILENO, &c, 1);
            if (n == 1 && (c == 'q' || c == 'Q'))
                return true;
            if (n == 0) /* stdin closed: keep drawing until the time is up */
                tty = tty && isatty(STDIN_FILENO);
        }
    }
}

int main(int argc, char **argv)
{
    bool once = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--once"))
            once = true;
        else if (argv[i][0] == '-' || path)
            path = NULL, i = argc;
        else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: magtop [--once] /path/to.sock\n"
                        "  (the runtime runs with MAG_STATS=/path/to.sock)\n");
        return 2;
    }
    int fd = connect_to(path);
    if (fd < 0) {
        fprintf(stderr, "magtop: cannot connect to %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    jv_t *prev = fetch(fd), *cur = NULL;
    if (!prev) {
        fprintf(stderr, "magtop: %s did not answer\n", path);
        return 1;
    }
    if (once) {
        sleep(1);
        cur = fetch(fd);
        if (cur)
            draw(path, cur, prev, 1000);
        jfree(prev);
        jfree(cur);
        close(fd);
        return cur ? 0 : 1;
    }
    term_setup();
    draw(path, prev, NULL, term_rows());
    const char *why = NULL;
    while (!wait_key(1000)) {
        cur = fetch(fd);
        if (!cur) {
            why = "the runtime went away";
            break;
        }
        draw(path, cur, prev, term_rows());
        jfree(prev);
        prev = cur;
    }
    term_restore();
    if (why)
        printf("magtop: %s (%s)\n", why, path);
    jfree(prev);
    close(fd);
    return 0;
}
