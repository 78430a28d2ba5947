/* The side channel that names a hung rank.
 *
 * When a collective times out, MPI (or NCCL) cannot say which rank is
 * missing, and a call into it may never return. So each rank of a job with
 * a watchdog also listens on a TCP port of its own, answered by a small
 * thread that sends the rank's state (ct__comm_state_t: the collectives it
 * has entered per group, whether it is inside one, its activity) to
 * whoever connects, and closes. Ranks learn each other's host, pid, port
 * and IPv4 addresses once, by an allgather at init. The timed-out rank asks
 * the ranks it waits for, in parallel, with short deadlines:
 *   - a rank that accepts but never answers is stopped (SIGSTOP stops every
 *     thread; the kernel still completes the connection) or hung with every
 *     thread blocked;
 *   - a refused connection on every address means its process is gone;
 *   - a rank whose count for the group is below the collective's number has
 *     not entered it. If it waits in another collective itself, the ranks
 *     it waits for are asked in turn, so that a chain (rank 0 waits in dp
 *     for rank 1, which waits in tp for rank 3) ends at rank 3.
 * Of a rank that does not answer the count is unknown: it "holds up" the
 * collective (it may be stopped inside it) rather than "has not entered".
 * The responder never reads from the connection and answers anyone who
 * connects: the state holds counters, a pid and the activity string, no
 * secrets. Answers carry a job id (rank 0's random nonce), the rank and the
 * pid, so a stale or foreign process on a reused port is not believed.
 * What is left out: IPv6 (IPv4 addresses only; loopback is the last
 * resort), and worlds above a few hundred ranks per group are asked in
 * batches whose deadlines add up. */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "comm/comm_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define SC_MAGIC 0x63747363u /* "ctsc" */
#define SC_MAX_ADDRS 4
#define SC_BATCH 256          /* connections open at once */
#define SC_CONNECT_S 0.5      /* per address, before trying the next one */
#define SC_ROUND_S 1.5        /* one round of questions */
#define SC_BUDGET_S 3.0       /* all rounds together */
#define SC_MAX_NAMED 16       /* culprits kept for the details */
#define SC_LINGER_WORLD 64    /* up to this size, the linger asks every rank */

/* What each rank tells the others at init. Fixed size, a multiple of 4
 * bytes: it travels as int32 through ct_comm_allgather. */
typedef struct {
    uint32_t magic;
    int32_t rank, pid;
    uint16_t port; /* 0: this rank has no side channel */
    uint16_t naddr;
    uint32_t addr[SC_MAX_ADDRS]; /* IPv4, network byte order, loopback last */
    uint64_t nonce;              /* rank 0's is the job id */
    char host[64];
} sc_peer_t;
_Static_assert(sizeof(sc_peer_t) % 4 == 0, "sc_peer_t travels as int32");

/* The answer to a connection. */
typedef struct {
    uint32_t magic;
    int32_t rank, pid, pad;
    uint64_t job;
    ct__comm_state_t st;
} sc_msg_t;

static struct {
    int up;
    int rank, world, dp, tp;
    uint64_t job;
    sc_peer_t *peers; /* world entries */
    int listen_fd, wake[2];
    pthread_t thread;
    /* from the last blame */
    int named[SC_MAX_NAMED];
    char details[SC_MAX_NAMED][512];
    int nnamed;
    int *waiting; /* ranks that answered from inside a collective */
    int nwaiting;
} sc = {.listen_fd = -1, .wake = {-1, -1}};
/* The watchdog and ct_comm_sync (nccl) may both report; one at a time. */
static pthread_mutex_t sc_mu = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *ct__comm_slot_name(int slot)
{
    static const char *const names[] = {"world", "dp", "tp", "every group"};
    return slot >= 0 && slot <= CT__SLOT_ALL ? names[slot] : "(none)";
}

/* ---- the responder ----------------------------------------------------------- */

static void *sc_main(void *arg)
{
    (void)arg;
    struct pollfd p[2] = {{.fd = sc.listen_fd, .events = POLLIN},
                          {.fd = sc.wake[0], .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            CT_LOG_WARN("comm side channel: poll failed: %s; peers can no longer ask this rank",
                        strerror(errno));
            return NULL;
        }
        if (p[1].revents) return NULL;
        for (;;) {
            int fd = accept4(sc.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) break; /* EAGAIN: no more; other errors: the client went away */
            sc_msg_t m = {.magic = SC_MAGIC, .rank = sc.rank, .pid = (int32_t)getpid(),
                          .job = sc.job};
            ct__comm_state(&m.st);
            /* A fresh socket's buffer takes it whole; a client that does not
             * read loses its answer, nothing else. */
            ssize_t n = send(fd, &m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)n;
            close(fd);
        }
    }
}

/* This host's IPv4 addresses, loopback last. */
static int host_addrs(uint32_t *out, int max)
{
    int n = 0;
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i && n < max - 1; i = i->ifa_next) {
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
            if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
            out[n++] = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
        }
        freeifaddrs(ifs);
    }
    out[n++] = htonl(INADDR_LOOPBACK);
    return n;
}

/* Opens the listener; fills me->port (left 0 on failure, warned). */
static void sc_listen(sc_peer_t *me)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t len = sizeof a;
    const char *call = "socket";
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    call = "bind";
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) goto fail;
    call = "listen";
    if (listen(fd, 128) != 0) goto fail;
    call = "getsockname";
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) goto fail;
    sc.listen_fd = fd;
    me->port = ntohs(a.sin_port);
    return;

fail:
    CT_LOG_WARN("comm side channel: %s failed: %s; if a collective times out, the other ranks "
                "cannot ask this one what it is doing",
                call, strerror(errno));
    if (fd >= 0) close(fd);
}

ct_status_t ct__comm_sc_init(const ct_comm_groups_t *g)
{
    CT_ASSERT(!sc.up && g->world_size > 1);
    sc_peer_t me = {.magic = SC_MAGIC, .rank = g->rank, .pid = (int32_t)getpid()};
    if (gethostname(me.host, sizeof me.host - 1) != 0) snprintf(me.host, sizeof me.host, "?");
    me.naddr = (uint16_t)host_addrs(me.addr, SC_MAX_ADDRS);
    if (getrandom(&me.nonce, sizeof me.nonce, GRND_NONBLOCK) != (ssize_t)sizeof me.nonce)
        me.nonce = (uint64_t)getpid() << 32 ^ (uint64_t)(now_s() * 1e9);
    sc_listen(&me);

    sc_peer_t *peers = calloc((size_t)g->world_size, sizeof *peers);
    if (!peers) {
        CT_LOG_ERROR("out of memory for the comm side channel (%d ranks)", g->world_size);
        if (sc.listen_fd >= 0) close(sc.listen_fd);
        sc.listen_fd = -1;
        return CT_ERR_NO_MEMORY; /* every rank has the same world size, so every rank fails */
    }
    ct_status_t st = ct_comm_allgather(ct_comm_host(g->world), &me, peers, sizeof me / 4,
                                       CT_DTYPE_I32, NULL);
    if (st != CT_OK) goto close_listener;

    sc.rank = g->rank;
    sc.world = g->world_size;
    sc.dp = g->dp_size;
    sc.tp = g->tp_size;
    sc.job = peers[0].nonce;
    sc.peers = peers;
    if (sc.listen_fd >= 0) {
        int rc = pipe2(sc.wake, O_CLOEXEC);
        if (rc == 0) {
            /* Signals stay with the threads that handle them. */
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            rc = pthread_create(&sc.thread, NULL, sc_main, NULL);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            if (rc != 0) {
                close(sc.wake[0]);
                close(sc.wake[1]);
            }
        } else {
            rc = errno;
        }
        if (rc != 0) {
            CT_LOG_WARN("comm side channel: cannot start its thread: %s; if a collective times "
                        "out, the other ranks cannot ask this one what it is doing",
                        strerror(rc));
            sc.wake[0] = sc.wake[1] = -1;
            close(sc.listen_fd);
            sc.listen_fd = -1;
        }
    }
    sc.up = 1;
    CT_LOG_DEBUG("comm side channel: rank %d listens on port %u (%d addresses)", sc.rank,
                 (unsigned)me.port, me.naddr);
    return CT_OK;

close_listener:
    free(peers);
    if (sc.listen_fd >= 0) close(sc.listen_fd);
    sc.listen_fd = -1;
    return st;
}

void ct__comm_sc_free(void)
{
    if (!sc.up) return;
    if (sc.listen_fd >= 0) {
        ssize_t n = write(sc.wake[1], "x", 1);
        (void)n; /* a full pipe already wakes it */
        pthread_join(sc.thread, NULL);
        close(sc.wake[0]);
        close(sc.wake[1]);
        close(sc.listen_fd);
    }
    free(sc.peers);
    free(sc.waiting);
    memset(&sc, 0, sizeof sc);
    sc.listen_fd = -1;
    sc.wake[0] = sc.wake[1] = -1;
}

/* ---- asking ------------------------------------------------------------------------ */

enum { V_UNASKED = 0, V_ANSWERED, V_SILENT, V_GONE, V_UNREACHABLE, V_NOCHAN };

typedef struct {
    int kind;
    ct__comm_state_t st; /* V_ANSWERED */
    int err;             /* V_UNREACHABLE: the last connect error */
} sc_view_t;

typedef struct {
    int rank, fd, ai;
    int phase; /* 0: connect next address, 1: connecting, 2: reading, 3: done */
    double t_conn;
    int silent, refused, err;
    size_t got;
    sc_msg_t msg;
} sc_ask_t;

static void ask_close(sc_ask_t *q)
{
    if (q->fd >= 0) close(q->fd);
    q->fd = -1;
}

/* Starts a connection to q's next address; phase 3 when none is left. */
static void ask_next(sc_ask_t *q)
{
    const sc_peer_t *p = &sc.peers[q->rank];
    while (q->ai < p->naddr && q->ai < SC_MAX_ADDRS) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p->port),
                                .sin_addr.s_addr = p->addr[q->ai++]};
        q->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (q->fd < 0) {
            q->err = errno;
            continue;
        }
        q->got = 0;
        q->t_conn = now_s();
        if (connect(q->fd, (struct sockaddr *)&a, sizeof a) == 0) {
            q->phase = 2;
            return;
        }
        if (errno == EINPROGRESS) {
            q->phase = 1;
            return;
        }
        q->err = errno;
        if (errno == ECONNREFUSED) q->refused = 1;
        ask_close(q);
    }
    q->phase = 3;
}

/* The connection of q is done with; the answer counts if it is whole and
 * from the rank and job asked. */
static void ask_finish_read(sc_ask_t *q, int *ok)
{
    ct__comm_state_t *st = &q->msg.st;
    *ok = q->got == sizeof q->msg && q->msg.magic == SC_MAGIC && q->msg.job == sc.job &&
          q->msg.rank == q->rank && q->msg.pid == sc.peers[q->rank].pid && st->slot >= -1 &&
          st->slot <= CT__SLOT_ALL;
    st->op[sizeof st->op - 1] = 0;
    st->activity[sizeof st->activity - 1] = 0;
    ask_close(q);
    if (*ok) {
        q->phase = 3;
    } else {
        q->err = EPROTO; /* cut short, or another process on that address */
        ask_next(q);
    }
}

/* Asks ranks[0..n) in parallel until they have answered or deadline; fills
 * their views. */
static void ask_batch(const int *ranks, int n, double deadline, sc_view_t *views)
{
    sc_ask_t *q = calloc((size_t)n, sizeof *q);
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    int *idx = calloc((size_t)n, sizeof *idx);
    int *ok = calloc((size_t)n, sizeof *ok);
    if (!q || !pf || !idx || !ok) goto done; /* left unasked */
    for (int i = 0; i < n; i++) {
        q[i].rank = ranks[i];
        q[i].fd = -1;
        ask_next(&q[i]);
    }
    for (;;) {
        double t = now_s();
        int np = 0;
        double wake = deadline;
        for (int i = 0; i < n; i++) {
            double give_up = q[i].t_conn + SC_CONNECT_S;
            if (q[i].phase == 1 && t > give_up && q[i].ai < sc.peers[q[i].rank].naddr) {
                /* No answer to the SYN: maybe a filtered address; try the next. */
                q[i].silent = 1;
                ask_close(&q[i]);
                ask_next(&q[i]);
            }
            if (q[i].phase == 1 || q[i].phase == 2) {
                pf[np] = (struct pollfd){.fd = q[i].fd,
                                         .events = q[i].phase == 1 ? POLLOUT : POLLIN};
                idx[np++] = i;
                give_up = q[i].t_conn + SC_CONNECT_S; /* ask_next may have restarted it */
                if (q[i].phase == 1 && give_up < wake) wake = give_up;
            }
        }
        if (np == 0 || t >= deadline) break;
        int ms = (int)((wake - t) * 1000) + 1;
        int rc = poll(pf, (nfds_t)np, ms);
        if (rc < 0 && errno != EINTR) break;
        for (int j = 0; j < np && rc > 0; j++) {
            if (!pf[j].revents) continue;
            sc_ask_t *a = &q[idx[j]];
            if (a->phase == 1) {
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
                if (err == 0) {
                    a->phase = 2;
                } else {
                    a->err = err;
                    if (err == ECONNREFUSED) a->refused = 1;
                    ask_close(a);
                    ask_next(a);
                }
                continue;
            }
            ssize_t r = recv(a->fd, (char *)&a->msg + a->got, sizeof a->msg - a->got, 0);
            if (r > 0) {
                a->got += (size_t)r;
                if (a->got == sizeof a->msg) ask_finish_read(a, &ok[idx[j]]);
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                ask_finish_read(a, &ok[idx[j]]);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        sc_view_t *v = &views[q[i].rank];
        if (ok[i]) {
            v->kind = V_ANSWERED;
            v->st = q[i].msg.st;
        } else if (q[i].phase == 1 || q[i].phase == 2 || q[i].silent) {
            v->kind = V_SILENT; /* connected (or the SYN went unanswered), no answer */
        } else if (q[i].refused) {
            v->kind = V_GONE;
        } else {
            v->kind = V_UNREACHABLE;
            v->err = q[i].err;
        }
        ask_close(&q[i]);
    }
done:
    free(q);
    free(pf);
    free(idx);
    free(ok);
}

/* Asks the ranks flagged in need[] (clearing the flags) within deadline. */
static void ask(char *need, double deadline, sc_view_t *views)
{
    int *ranks = malloc((size_t)sc.world * sizeof *ranks);
    if (!ranks) return;
    int n = 0;
    for (int r = 0; r < sc.world; r++) {
        if (!need[r]) continue;
        need[r] = 0;
        if (sc.peers[r].port == 0)
            views[r].kind = V_NOCHAN;
        else
            ranks[n++] = r;
    }
    for (int o = 0; o < n; o += SC_BATCH)
        ask_batch(ranks + o, n - o < SC_BATCH ? n - o : SC_BATCH, deadline, views);
    free(ranks);
}

/* ---- who holds whom up ----------------------------------------------------------- */

/* The size of a group in slot s, and its i-th rank for rank r. */
static int group_size(int s)
{
    return s == CT__SLOT_WORLD ? sc.world : s == CT__SLOT_DP ? sc.dp : sc.tp;
}

static int member(int s, int r, int i)
{
    if (s == CT__SLOT_DP) return r % sc.tp + i * sc.tp; /* DP peers share a tp_rank */
    if (s == CT__SLOT_TP) return r / sc.tp * sc.tp + i; /* TP peers are adjacent */
    return i;
}

typedef struct {
    int rank, slot, waiter;
    uint64_t seq;
    int cycle; /* it waits in turn for a rank on the path to it */
} sc_culprit_t;

typedef struct {
    sc_view_t *views;
    char *mark; /* 0: not visited, 1: on the path, 2: done */
    char *need; /* to be asked in the next round */
    int last;   /* the last round: a rank not asked yet is named as such */
    sc_culprit_t *found;
    int nfound, ncycle;
    sc_culprit_t cyc[SC_MAX_NAMED];
} sc_walk_t;

static void add(sc_culprit_t *list, int *n, sc_culprit_t c)
{
    for (int i = 0; i < *n; i++)
        if (list[i].rank == c.rank) return;
    if (*n < SC_MAX_NAMED) list[(*n)++] = c;
}

/* Finds the ranks that hold r up; returns how many ranks r waits for. */
static int visit(sc_walk_t *w, int r)
{
    w->mark[r] = 1;
    const ct__comm_state_t *st = &w->views[r].st;
    int waits = 0;
    int s0 = st->slot == CT__SLOT_ALL ? 0 : st->slot;
    int s1 = st->slot == CT__SLOT_ALL ? CT__NSLOTS : st->slot + 1;
    if (!st->inside || st->slot < 0) s1 = s0; /* waits for no one */
    for (int s = s0; s < s1; s++) {
        uint64_t target = st->seq[s];
        if (target == 0) continue;
        for (int i = 0, n = group_size(s); i < n; i++) {
            int p = member(s, r, i);
            const sc_view_t *v = &w->views[p];
            if (p == r) continue;
            if (v->kind == V_ANSWERED && v->st.seq[s] >= target) continue; /* entered */
            waits++;
            if (v->kind == V_UNASKED && !w->last) {
                w->need[p] = 1;
                continue;
            }
            sc_culprit_t c = {.rank = p, .slot = s, .waiter = r, .seq = target};
            if (v->kind == V_ANSWERED && v->st.inside && v->st.slot >= 0) {
                if (w->mark[p] == 0) {
                    if (visit(w, p) == 0) add(w->found, &w->nfound, c); /* all its peers are in */
                } else if (w->mark[p] == 1) {
                    c.cycle = 1;
                    add(w->cyc, &w->ncycle, c);
                }
                continue;
            }
            add(w->found, &w->nfound, c);
        }
    }
    w->mark[r] = 2;
    return waits;
}

/* Why rank c.rank holds its waiter up, in words. */
static void describe(const sc_view_t *views, sc_culprit_t c, char *out, size_t size)
{
    const sc_peer_t *p = &sc.peers[c.rank];
    const sc_view_t *v = &views[c.rank];
    const ct__comm_state_t *w = &views[c.waiter].st;
    char where[96];
    if (c.waiter == sc.rank)
        snprintf(where, sizeof where, "%s on %s", w->op, ct__comm_slot_name(c.slot));
    else
        snprintf(where, sizeof where, "%s on %s, which rank %d waits in", w->op,
                 ct__comm_slot_name(c.slot), c.waiter);
    char why[320];
    switch (v->kind) {
    case V_SILENT:
        snprintf(why, sizeof why, "it does not answer on the side channel (stopped, e.g. by "
                 "SIGSTOP or a debugger, or hung with every thread blocked)");
        break;
    case V_GONE: snprintf(why, sizeof why, "its process is gone (connection refused)"); break;
    case V_UNREACHABLE:
        snprintf(why, sizeof why, "it cannot be reached (%s)", strerror(v->err));
        break;
    case V_NOCHAN: snprintf(why, sizeof why, "it has no side channel to ask"); break;
    case V_UNASKED: snprintf(why, sizeof why, "it was not asked in time"); break;
    default:
        if (c.cycle || v->st.inside) {
            char in[96];
            if (v->st.slot == CT__SLOT_ALL)
                snprintf(in, sizeof in, "%s, for everything it issued,", v->st.op);
            else if (v->st.slot < 0)
                snprintf(in, sizeof in, "%s (group setup)", v->st.op);
            else
                snprintf(in, sizeof in, "collective #%llu (%s on %s)",
                         (unsigned long long)v->st.seq[v->st.slot], v->st.op,
                         ct__comm_slot_name(v->st.slot));
            snprintf(why, sizeof why, "it waits in %s itself%s", in,
                     c.cycle ? ", and so do the ranks it waits for: the ranks issue collectives "
                               "in different orders"
                             : ", and every rank it waits for has entered");
        } else {
            snprintf(why, sizeof why, "it is not in a collective (it has entered %llu on %s) "
                     "while %s",
                     (unsigned long long)v->st.seq[c.slot], ct__comm_slot_name(c.slot),
                     v->st.activity[0] ? v->st.activity : "(activity not set)");
        }
    }
    /* Only an answer shows that a rank has not entered: one that does not
     * answer may be stopped inside the collective. */
    snprintf(out, size, "rank %d (host %s, pid %d) %s collective #%llu (%s): %s", c.rank, p->host,
             (int)p->pid, v->kind == V_ANSWERED ? "has not entered" : "holds up",
             (unsigned long long)c.seq, where, why);
}

int ct__comm_sc_blame(const ct__comm_state_t *self, char *summary, size_t size)
{
    pthread_mutex_lock(&sc_mu);
    sc.nnamed = 0;
    sc.nwaiting = 0;
    if (!sc.up) {
        snprintf(summary, size, "a peer rank is dead or hung (no side channel to ask which)");
        pthread_mutex_unlock(&sc_mu);
        return 0;
    }
    if (!self->inside || self->slot < 0) {
        snprintf(summary, size, "a peer rank is dead or hung (this wait is not a collective on "
                 "a group, so the side channel cannot say which)");
        pthread_mutex_unlock(&sc_mu);
        return 0;
    }
    size_t W = (size_t)sc.world;
    sc_walk_t w = {0};
    w.views = calloc(W, sizeof *w.views);
    w.mark = calloc(W, 1);
    w.need = calloc(W, 1);
    w.found = calloc(SC_MAX_NAMED, sizeof *w.found);
    free(sc.waiting);
    sc.waiting = calloc(W, sizeof *sc.waiting);
    if (!w.views || !w.mark || !w.need || !w.found || !sc.waiting) {
        snprintf(summary, size, "a peer rank is dead or hung (out of memory asking which)");
        goto done;
    }
    w.views[sc.rank].kind = V_ANSWERED;
    w.views[sc.rank].st = *self;

    /* Rounds: walk with what is known, ask the ranks the walk needed. The
     * last walk names those it could not ask in time. */
    double t0 = now_s();
    for (;;) {
        memset(w.mark, 0, W);
        w.nfound = w.ncycle = 0;
        visit(&w, sc.rank);
        if (w.last) break;
        int more = 0;
        for (size_t r = 0; r < W; r++) more |= w.need[r];
        double left = SC_BUDGET_S - (now_s() - t0);
        if (!more) break;
        if (left <= 0.05) {
            w.last = 1;
            continue;
        }
        ask(w.need, now_s() + (left < SC_ROUND_S ? left : SC_ROUND_S), w.views);
    }
    if (w.nfound == 0 && w.ncycle > 0) {
        memcpy(w.found, w.cyc, sizeof w.cyc[0] * (size_t)w.ncycle);
        w.nfound = w.ncycle;
    }
    for (int i = 0; i < w.nfound; i++) {
        sc.named[i] = w.found[i].rank;
        describe(w.views, w.found[i], sc.details[i], sizeof sc.details[i]);
    }
    sc.nnamed = w.nfound;
    /* For the linger: the ranks that wait too, or may (not asked yet). */
    for (int r = 0; r < sc.world; r++) {
        int named = 0;
        for (int i = 0; i < sc.nnamed; i++) named |= sc.named[i] == r;
        const sc_view_t *v = &w.views[r];
        int near = sc.world <= SC_LINGER_WORLD || r % sc.tp == sc.rank % sc.tp ||
                   r / sc.tp == sc.rank / sc.tp; /* a dp or tp peer */
        if (r == sc.rank || named) continue;
        if ((v->kind == V_ANSWERED && v->st.inside && !v->st.reported) ||
            (v->kind == V_UNASKED && near))
            sc.waiting[sc.nwaiting++] = r;
    }

    if (sc.nnamed == 1) {
        snprintf(summary, size, "%s", sc.details[0]);
    } else if (sc.nnamed > 1) {
        char list[256] = "";
        for (int i = 0; i < sc.nnamed; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%d", i ? ", " : "", sc.named[i]);
        }
        snprintf(summary, size, "ranks %s hold it up (one line each follows)", list);
    } else {
        snprintf(summary, size, "every rank that this rank waits for (directly or through "
                 "others) has entered its collective, so no rank is missing: the transport "
                 "itself is stuck");
    }

done:
    free(w.views);
    free(w.mark);
    free(w.need);
    free(w.found);
    int n = sc.nnamed;
    pthread_mutex_unlock(&sc_mu);
    return n;
}

void ct__comm_sc_log_details(void)
{
    pthread_mutex_lock(&sc_mu);
    for (int i = 0; sc.nnamed > 1 && i < sc.nnamed; i++)
        CT_LOG_ERROR("rank %d: %s", sc.rank, sc.details[i]);
    pthread_mutex_unlock(&sc_mu);
}

void ct__comm_sc_linger(double wait_s)
{
    pthread_mutex_lock(&sc_mu);
    double t0 = now_s();
    size_t W = (size_t)sc.world;
    sc_view_t *views = calloc(W, sizeof *views);
    char *need = calloc(W, 1);
    while (sc.up && views && need && sc.nwaiting > 0 && now_s() - t0 < wait_s) {
        for (int i = 0; i < sc.nwaiting; i++) need[sc.waiting[i]] = 1;
        ask(need, now_s() + 0.5, views);
        int n = 0;
        for (int i = 0; i < sc.nwaiting; i++) {
            const sc_view_t *v = &views[sc.waiting[i]];
            if (v->kind == V_ANSWERED && !v->st.reported) sc.waiting[n++] = sc.waiting[i];
        }
        sc.nwaiting = n;
        if (n) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    free(views);
    free(need);
    pthread_mutex_unlock(&sc_mu);
}
