/* nodes.c - the nodes sharing one PostgreSQL store (PostgreSQL only): a node's row
 * (register at open, heartbeat, leave at close), the end of the leases and units of
 * nodes that fell silent, and the watcher that LISTENs for work (store_watch).
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "store/postgres/pg_int.h"
#include "util/buf.h"
#include "util/errors.h"

#define NODE_FORGET_MS (24 * 3600000LL) /* node rows silent this long are deleted */

int pg_node_register_body(struct conn *c, void *vctx)
{
    struct node_ctx *x = vctx;
    struct pg_params p = {0};
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    buf_reset(&c->tmp);
    buf_printf(&c->tmp, "%s pid %ld", host, (long)getpid());
    pg_param_str(&p, x->node);
    pg_param_i64(&p, c->now);
    pg_param_str(&p, buf_cstr(&c->tmp));
    int rc = pg_exec(c,
                     "INSERT INTO nodes(node, started_at, last_seen, info) VALUES($1, $2, $2, $3) "
                     "ON CONFLICT(node) DO UPDATE SET last_seen = excluded.last_seen",
                     &p, NULL);
    return rc < 0 ? rc : 0;
}

/* A node closing its store leaves the nodes table when it holds no claim (a graceful
 * shutdown gave them back; a CLI command never had any). */
int pg_node_leave_body(struct conn *c, void *vctx)
{
    struct node_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->node);
    int rc = pg_exec(c,
                     "DELETE FROM nodes WHERE node = $1 AND NOT EXISTS "
                     "(SELECT 1 FROM claims WHERE claims.node = $1)",
                     &p, NULL);
    return rc < 0 ? rc : 0;
}

/* ---- nodes ----------------------------------------------------------------------- */

static int heartbeat_body(struct conn *c, void *vctx)
{
    struct node_ctx *x = vctx;
    struct pg_params p = {0};
    int rc = pg_node_register_body(c, vctx);
    if (rc < 0)
        return rc;
    /* Leases of silent nodes end now: the token goes (a late write from the node is
     * refused) and released stays 0, so the takeover counts the attempt. */
    pg_param_i64(&p, c->now - x->timeout_ms);
    pg_param_str(&p, x->node);
    rc = pg_exec(
        c,
        "UPDATE claims SET lease_until = 0, token = '' WHERE lease_until > 0 AND node <> $2 "
        "AND node IN (SELECT node FROM nodes WHERE last_seen < $1)",
        &p, NULL);
    if (rc < 0)
        return rc;
    x->released = rc;
    struct pg_params u = {0};
    pg_param_i64(&u, c->now - x->timeout_ms);
    pg_param_str(&u, x->node);
    rc = pg_exec(c,
                 "DELETE FROM sems WHERE node <> $2 AND node IN "
                 "(SELECT node FROM nodes WHERE last_seen < $1)",
                 &u, NULL);
    if (rc < 0)
        return rc;
    struct pg_params q = {0};
    pg_param_i64(&q, c->now - NODE_FORGET_MS);
    rc = pg_exec(c,
                 "DELETE FROM nodes WHERE last_seen < $1 AND NOT EXISTS "
                 "(SELECT 1 FROM claims WHERE claims.node = nodes.node)",
                 &q, NULL);
    return rc < 0 ? rc : x->released;
}

int pg_heartbeat(void *impl)
{
    struct pg *s = impl;
    struct node_ctx x = {.node = s->node, .timeout_ms = s->opt.node_timeout_ms};
    return pg_run_tx(s, heartbeat_body, NULL, &x);
}

const char *pg_node_id(void *impl)
{
    return ((struct pg *)impl)->node;
}

/* The watcher thread: LISTEN sluice_work on a connection of its own and call watch_fn
 * for each notification (and after each reconnect, since notifications sent while
 * it was away are lost). */
static void *watch_main(void *arg)
{
    struct pg *s = arg;
    PGconn *pg = NULL;
    int backoff_ms = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int stop = s->watch_stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (!pg) {
            pg = pg_connect(s->url);
            PGresult *r = pg ? PQexec(pg, "LISTEN sluice_work") : NULL;
            if (!pg || PQresultStatus(r) != PGRES_COMMAND_OK) {
                PQclear(r);
                if (pg)
                    PQfinish(pg);
                pg = NULL;
                backoff_ms = backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 100;
                struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
                nanosleep(&ts, NULL);
                continue;
            }
            PQclear(r);
            backoff_ms = 0;
            s->watch_fn(s->watch_ctx);
        }
        struct pollfd pfd = {PQsocket(pg), POLLIN, 0};
        int prc = poll(&pfd, 1, 250);
        if (prc < 0 && errno != EINTR)
            continue;
        if (prc > 0) {
            if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) {
                PQfinish(pg);
                pg = NULL;
                continue;
            }
            int woke = 0;
            PGnotify *n;
            while ((n = PQnotifies(pg)) != NULL) {
                woke = 1;
                PQfreemem(n);
            }
            if (woke)
                s->watch_fn(s->watch_ctx);
        }
    }
    if (pg)
        PQfinish(pg);
    return NULL;
}

void pg_watch_stop(struct pg *s)
{
    if (!s->watch_running)
        return;
    pthread_mutex_lock(&s->mu);
    s->watch_stop = 1;
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->watch_thread, NULL);
    s->watch_running = 0;
    s->watch_stop = 0;
}

int pg_watch(void *impl, void (*fn)(void *ctx), void *ctx)
{
    struct pg *s = impl;
    pg_watch_stop(s);
    if (!fn)
        return 0;
    s->watch_fn = fn;
    s->watch_ctx = ctx;
    if (pthread_create(&s->watch_thread, NULL, watch_main, s) != 0)
        return -SLUICE_E_INTERNAL;
    s->watch_running = 1;
    return 0;
}
