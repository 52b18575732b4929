/* store.h - the storage contract: every byte sluice keeps goes through here.
 *
 * DESIGN
 * A backend is a `const struct store_ops` (store_int.h) picked at run time from the URL
 * ("sqlite:PATH": one process owns the file; "postgres://...": several nodes share
 * the database, see NODES below). Callers use the store_*() wrappers
 * below, which forward to st->ops (and are where tests inject faults). The handle is
 * shared by all threads; backends keep one connection per thread or a pool, and never
 * hold a transaction open across a call boundary. Soft errors (busy, serialization)
 * are retried inside the backend in exactly one place; what reaches the caller is
 * final: -SLUICE_E_STORE_BUSY / -SLUICE_E_STORE_IO / -SLUICE_E_STORE_FULL (out of
 * space) when the store cannot serve; a call that fails so has stored nothing.
 *
 * Times are milliseconds since the epoch (0 = not set). Strings are UTF-8.
 * Every function returns >= 0 on success (1 = found, 0 = not found where stated) and
 * a negative sluice error code otherwise. Structs filled by the store own their heap
 * fields; release them with the matching *_release().
 *
 * JOB STATES (job.status)                         ITEM STATES (item.status)
 *
 *   store_job_begin -> [Receiving] (invisible)     [Pending] --store_claim--> (Processing)
 *      | store_job_abort: gone                          |                        |
 *      v store_job_commit                               | store_job_cancel       | store_complete
 *   [NotStarted] --store_claim--> [Running]             v                        v
 *      |                            |   \           [Canceled]   [Succeeded|Failed|Skipped]
 *      | store_job_cancel           |    `-- last item terminal (store_complete /
 *      v                            v         store_claim expiry) --> [Succeeded] (outcome
 *   [Canceled] <-- in flight done -- [Canceling]      AllSucceeded|PartiallySucceeded)
 *                                                     or [Failed] (AllItemsFailed)
 *
 * Processing is not stored per item: claims lease contiguous index ranges
 * [from, to) of one job, so claiming costs O(1) writes whatever the batch size.
 * A pending item whose index is below the job's claim cursor is reported as
 * Processing; one at or above the job's cancel point as Canceled. Only finishing an
 * item writes its row. Items with the same ref in one job are applied in input
 * order: a claim range stops before an item whose previous same-ref item (prev_idx)
 * is neither terminal nor inside the same range.
 *
 * REF ORDER across jobs (store_job_meta.ref_order = STORE_REF_ORDER_TENANT, from the
 * workflow version the job runs): such a job's item is not claimed while the latest
 * same-ref item of an earlier such job of the same tenant and workflow name is
 * Pending or Processing. Met at the start of a new range, it is parked: the cursor
 * passes it (it is reported Processing) and the range goes on after it; a later
 * store_claim leases it (in a claim of its own) once its turn came, or settles it
 * Canceled when its job is being canceled. Met further on, the range stops before it.
 * "Earlier" is commit order (store_job_commit; a retry when it becomes NotStarted).
 * An item that is terminal, Canceled (its job canceled below it) or gone (its job
 * deleted) no longer blocks. Jobs without the option neither wait nor are waited for.
 * The commit of such a job reads its items once and keeps, per (tenant, workflow,
 * ref), the latest item committed (ref_tails) and, per item whose ref's latest item
 * was still unfinished, a link to it (ref_waits), which claims look up by key; both
 * go with their job (store_job_delete, store_retention_sweep). Jobs without the
 * option write nothing more and their claims read nothing more (each store_claim
 * looks once into an index of parked items, empty unless some wait).
 *
 * Job counts (total, pending, processing, succeeded, failed, skipped, canceled) live
 * in the job row and change in the same transaction as the items they count, so
 * reading a job is O(1). */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stddef.h>
#include <stdint.h>

enum store_job_status {
    JOB_RECEIVING = 0, /* internal: items still streaming in; never shown */
    JOB_NOT_STARTED = 1,
    JOB_RUNNING = 2,
    JOB_CANCELING = 3,
    JOB_SUCCEEDED = 4,
    JOB_FAILED = 5,
    JOB_CANCELED = 6,
};

enum store_item_status {
    ITEM_PENDING = 0,
    ITEM_PROCESSING = 1, /* derived, never stored */
    ITEM_SUCCEEDED = 2,
    ITEM_FAILED = 3,
    ITEM_SKIPPED = 4,
    ITEM_CANCELED = 5,
};

enum store_job_outcome {
    OUTCOME_NONE = 0,
    OUTCOME_ALL_SUCCEEDED = 1,
    OUTCOME_PARTIALLY_SUCCEEDED = 2
};

/* Document operations, applied by the store inside the completing transaction. */
enum store_op { STORE_OP_NONE = 0, STORE_OP_UPSERT, STORE_OP_PATCH, STORE_OP_DELETE };

/* job ids (up to 64 chars: client-chosen Operation-Ids), key ids, lease tokens */
#define STORE_ID_MAX 72
#define STORE_NAME_MAX 160 /* tenant, workflow, collection names */
#define STORE_CODE_MAX 64  /* error codes */

struct store_counts {
    int64_t total, pending, processing, succeeded, failed, skipped, canceled;
};

struct store_job {
    char id[STORE_ID_MAX];
    char tenant[STORE_NAME_MAX];
    char workflow[STORE_NAME_MAX];
    char *client_reference;          /* heap or NULL */
    int status;                      /* enum store_job_status */
    int outcome;                     /* enum store_job_outcome, set when Succeeded */
    char error_code[STORE_CODE_MAX]; /* "" or e.g. "AllItemsFailed" */
    struct store_counts counts;
    int64_t created_at, started_at, last_progress_at, completed_at;
    int64_t seq; /* creation order, unique per store; lists go newest first by seq */
    /* Throughput window: items done (succeeded+failed+skipped) at two sample points
     * at least 5 s apart, refreshed by store_complete. rate = (done - win_done) /
     * (now - win_at). */
    int64_t win_at, win_done;
    int64_t workflow_version;       /* version of a stored workflow definition, 0 for built-ins */
    char parent_job[STORE_ID_MAX];  /* "" or the job this one retries (store_job_retry) */
    struct store_step_count *steps; /* heap, loaded by store_job_get only (NULL in lists);
                                       in first-seen order */
    size_t nsteps;
    int64_t expires_at; /* terminal jobs: completed_at + store_options.retention_ms, when
                           store_retention_sweep may remove it; 0 otherwise */
    int priority;       /* STORE_PRIORITY_MIN..MAX: claimed before lower ones of its tenant */
    char *uses;         /* heap or NULL: store_job_meta.uses as committed (a retry keeps
                           its parent's) */
    int staging;        /* a retry whose items are still being copied from its parent
                           (store_job_retry_begin): shown NotStarted, not claimed yet */
    int ref_order;      /* enum store_ref_order, as committed (a retry keeps its parent's) */
};

/* Where items that share a ref are kept in input order (see REF ORDER above). */
enum store_ref_order { STORE_REF_ORDER_JOB = 0, STORE_REF_ORDER_TENANT = 1 };

#define STORE_PRIORITY_MIN (-100)
#define STORE_PRIORITY_MAX 100
#define STORE_WEIGHT_MIN 1
#define STORE_WEIGHT_MAX 100

/* Everything store_job_commit records about a job besides its items. */
struct store_job_meta {
    const char *workflow;
    int64_t workflow_version;     /* 0 for built-in workflows */
    const char *client_reference; /* may be NULL */
    const char *idem_key;         /* may be NULL; unique per tenant (e.g. "hook:NAME:EVENT") */
    const char *body_hash;        /* may be NULL: hex SHA-256 of what the key covers (the
                                     request body); a key held with another hash does not
                                     replay but fails (see store_job_commit) */
    int64_t idem_not_before;      /* a key created before this time (ms) no longer counts:
                                     the new job takes it over; 0 = keys never age */
    const char *job_id;           /* may be NULL: the public id the job is committed under
                                     (a client's Operation-Id) instead of the staged id */
    const char *callback_url;     /* may be NULL: where the completion callback goes (an
                                     absolute http(s) URL, checked by the caller) */
    int callback_events;          /* STORE_CB_* bits subscribed; 0 with a callback_url
                                     means all of them */
    int priority;                 /* STORE_PRIORITY_MIN..MAX, 0 by default (checked by the
                                     caller); a retry keeps its parent's */
    const char *uses;             /* may be NULL: what the job's items consume (the processing
                                     limits its workflow names), opaque to the store, handed
                                     to the claim gate; a retry keeps its parent's */
    int callback_format;          /* how the callback is signed (STORE_CB_FORMAT_*), kept
                                     with the callback and copied to its delivery */
    int ref_order;                /* enum store_ref_order (see REF ORDER above); a retry
                                     keeps its parent's */
};

/* COMPLETION CALLBACKS (the outbox)
 *
 * A job committed with a callback_url keeps it in its row. The transaction that makes
 * the job terminal (store_complete, store_claim taking over an expired claim,
 * store_job_cancel) also inserts one outbox row - a delivery - when the job's
 * terminal event is subscribed: Succeeded -> "job.completed" (STORE_CB_COMPLETED),
 * Failed -> "job.failed", Canceled -> "job.canceled". So a callback is owed exactly
 * when the job is terminal, whatever crashes happen.
 *
 *   [Pending] --store_delivery_claim--> (leased) --store_delivery_record-->
 *        ^                                 |        state PENDING: next_at later
 *        |  lease expires / store_expire_claims      DELIVERED | ABANDONED: final
 *        `---------------------------------'
 *
 * Deliveries go with their job (store_job_delete, store_retention_sweep). */
enum { STORE_CB_COMPLETED = 1, STORE_CB_FAILED = 2, STORE_CB_CANCELED = 4, STORE_CB_ALL = 7 };

/* How a callback is signed (engine/callbacks.h): DEFAULT defers to the tenant's
 * store_callback_prefs.format when the delivery is sent. The store only keeps it. */
enum {
    STORE_CB_FORMAT_DEFAULT = 0,
    STORE_CB_FORMAT_STRIPE = 1,
    STORE_CB_FORMAT_STANDARD = 2,
    STORE_CB_FORMAT_MAX = 2
};

/* A tenant's callback settings (all 0 until the tenant sets one): its default format
 * and the generation of its signing key. A rotation makes key_gen + 1 the key and
 * keeps the one before as prev_gen until prev_until (ms); engine/callbacks.h derives
 * the keys from the generations, so no key is stored. */
struct store_callback_prefs {
    int format;         /* STORE_CB_FORMAT_*: DEFAULT = never set */
    int64_t key_gen;    /* 0 before the first rotation */
    int64_t prev_gen;   /* the generation key_gen replaced (meaningful when prev_until) */
    int64_t prev_until; /* 0 = never rotated */
    int64_t updated_at;
};

enum store_delivery_state { DELIVERY_PENDING = 0, DELIVERY_DELIVERED = 1, DELIVERY_ABANDONED = 2 };

#define STORE_EVENT_MAX 32

struct store_delivery {
    char id[STORE_ID_MAX]; /* "dlv_" + 24 hex: the Idempotency-Key of every attempt */
    char job_id[STORE_ID_MAX];
    char tenant[STORE_NAME_MAX];
    char event[STORE_EVENT_MAX]; /* "job.completed", "job.failed", "job.canceled" */
    char *url;                   /* heap */
    int state;                   /* enum store_delivery_state */
    int attempts;                /* attempts recorded so far */
    int64_t created_at;          /* when the job became terminal */
    int64_t next_at;             /* Pending: not claimed before this time */
    int64_t updated_at;
    int format;               /* STORE_CB_FORMAT_* of the job's callback at commit */
    char token[STORE_ID_MAX]; /* the lease's token (store_delivery_claim), else "" */
    char *log;                /* heap JSON array of attempts (store_delivery_list only,
                                 else NULL): {"attempt","at","latencyMs","status"
                                 [,"error":{"code","message"}]} */
};

/* One attempt of a delivery, as store_delivery_record appends it to the log. */
struct store_delivery_attempt {
    int64_t at; /* wall ms when it started */
    int64_t latency_ms;
    int status;                /* HTTP status of the answer, 0 when none came */
    const char *error_code;    /* NULL for a 2xx, else e.g. "UpstreamError" */
    const char *error_message; /* may be NULL */
};

struct store_item {
    int64_t index;
    char *ref;  /* heap */
    int status; /* enum store_item_status, effective (derived Processing/Canceled) */
    int attempts;
    char *data; /* heap raw JSON or NULL (NULL also in lists: not loaded) */
    size_t data_len;
    char *result; /* heap raw JSON or NULL */
    char error_code[STORE_CODE_MAX];
    char *error_message; /* heap or NULL */
    char *events;        /* heap JSON array text, NULL in lists (not loaded) */
    int64_t created_at, updated_at;
    char failed_step[STORE_NAME_MAX]; /* "" or the step that failed / skipped the item */
    char *warnings;                   /* heap JSON array text or NULL */
    int64_t parent_index;             /* index in the parent job (store_job_retry), or -1 */
};

/* Filters of store_item_list; a NULL / -1 field does not filter. */
struct store_item_filter {
    int status; /* effective status, -1 = any */
    const char *ref;
    const char *step; /* failed_step */
    const char *code; /* error_code */
};

/* A named definition owned by a tenant: a workflow, hook, limit or secret (see
 * TENANT-OWNED DEFINITIONS below for what differs between the kinds). */
enum store_def_kind {
    STORE_DEF_WORKFLOW,
    STORE_DEF_HOOK,
    STORE_DEF_LIMIT,
    STORE_DEF_SECRET,
    STORE_DEF__COUNT
};

/* What a put did (store_def_put). */
enum store_put_result { STORE_PUT_CREATED = 1, STORE_PUT_REPLACED = 2 };

struct store_def {
    enum store_def_kind kind;
    char name[STORE_NAME_MAX];
    char tenant[STORE_NAME_MAX];
    char *text;      /* heap: the definition's JSON text as validated by the caller (a
                        hook's holds its signing secrets: never echo it as is); a
                        secret's value (store_def_release wipes it) */
    int64_t version; /* workflows: 1, 2, ... never reused, even after a delete; others 0 */
    int deleted;     /* workflows: this version was removed by a delete of the name
                        (versions stay for running jobs); versions put after that
                        delete are live again, the ones it removed stay deleted */
    /* workflows: both are the creation of this version */
    int64_t created_at, updated_at;
};

struct store_doc {
    char *ref;  /* heap */
    char *data; /* heap raw JSON; NULL for a deleted document */
    size_t data_len;
    int64_t version; /* +1 per applied change, delete included (kept as a tombstone) */
    int64_t updated_at;
    char job_id[STORE_ID_MAX]; /* "" when last changed by a single-entity request */
    int64_t item_index;        /* -1 when not changed by a job item */
};

struct store_key {
    char key_id[STORE_ID_MAX];
    char tenant[STORE_NAME_MAX];
    int64_t created_at, revoked_at;
};

/* One item to store at submit. */
struct store_new_item {
    int64_t index;
    const char *ref;
    size_t ref_len;
    const char *data; /* raw JSON or NULL */
    size_t data_len;
    int64_t prev_idx; /* index of the previous item with the same ref in this job, or -1 */
};

/* A lease on items [from, to) of one job, handed to one worker. */
struct store_claim_item {
    int64_t index;
    char *ref;  /* heap */
    char *data; /* heap raw JSON or NULL */
    size_t data_len;
    int attempts; /* attempts before this one */
};

struct store_claim {
    int64_t claim_id;
    char token[STORE_ID_MAX]; /* fences late writers: store_complete checks it */
    char job_id[STORE_ID_MAX];
    char tenant[STORE_NAME_MAX];
    char workflow[STORE_NAME_MAX];
    int64_t from, to; /* index range [from, to) */
    int64_t claimed_at, lease_until;
    size_t n;                       /* items still pending in the range, in index order */
    struct store_claim_item *items; /* heap array of n */
};

/* A document operation applied by store_complete inside the completing transaction
 * (a pipeline's upsert/patch/delete steps), in the order given. */
struct store_doc_op {
    enum store_op op;
    const char *collection;
    const char *ref;  /* NULL = the item's ref */
    const char *data; /* UPSERT: replacement, PATCH: merge patch (raw JSON);
                         NULL = the item's own data as stored */
    size_t data_len;
    const char *step; /* the step's name: events, failed_step; NULL = unnamed
                         (no "step" member in its event, failed_step "") */
    /* [out], set when store_complete returns >= 0: */
    int64_t version; /* version written; 0 when the op failed */
    int created;     /* 1 when the document did not exist (or was deleted) */
    int error;       /* 0, or -SLUICE_E_DOCUMENT_NOT_FOUND / -SLUICE_E_INVALID_DATA /
                        -SLUICE_E_ITEM_TOO_LARGE (max_doc_bytes) */
};

/* Per-step tallies of one store_complete call, added to the job's step counts. */
struct store_step_count {
    const char *step; /* step name (heap when loaded by store_job_get) */
    int64_t passed, failed, skipped;
};

/* The scheduler's say over which job store_claim starts a new range of, and how big.
 * admit is called for a candidate range of `want` items of a job, in the fair order
 * (see store_claim), inside the claim's transaction: it returns how many of the
 * range's first items may be claimed now, 0..want; 0 passes over the job and the next
 * candidate is tried. It must be quick and must not call the store. A store that
 * retries its transaction may call it again for the same or another job: the caller
 * treats only the last call before store_claim returns 1 as granted, and only when
 * the claim is of that job (an expired claim taken over is not admitted). */
struct store_claim_gate {
    size_t (*admit)(void *ctx, const struct store_job *job, size_t want);
    void *ctx;
};

struct store_claim_opts {
    size_t max_items; /* range size (>= 1) */
    int64_t lease_ms;
    int max_attempts;    /* attempts after which an item whose lease expired fails */
    int max_active_jobs; /* per tenant: no NotStarted job of a tenant starts while it has
                            this many Running or Canceling jobs; 0 = no cap */
    const struct store_claim_gate *gate; /* NULL: every range is admitted */
};

/* What became of one claimed item. */
struct store_outcome {
    int64_t index;
    int status;               /* ITEM_SUCCEEDED, ITEM_FAILED or ITEM_SKIPPED */
    struct store_doc_op *ops; /* applied in order, whatever the status: the caller
                                passes the ops of the document steps the item got
                                through (a step that failed later does not undo them,
                                as in a sequential run). The first op that fails turns
                                the outcome into FAILED with the op's error code and
                                failed_step = op->step, and later ops are not applied.
                                The store writes each op's version/created/error. */
    size_t nops;
    const char *result;     /* raw JSON or NULL; when NULL and ops were applied the
                               store writes {"collection":C,"ref":R,"version":N,
                               "created":bool} of the last op */
    const char *error_code; /* for FAILED/SKIPPED: a sluice public code, e.g. "InvalidData" */
    const char *error_message;
    const char *failed_step; /* for FAILED/SKIPPED: the step that failed, or NULL */
    const char *warnings;    /* JSON array text of warnings ("continue" errors), or NULL */
    const char *events;      /* JSON array text of events to append (engine's), or NULL */
};

struct store_stats {
    int64_t jobs_by_status[7]; /* indexed by enum store_job_status */
    int64_t items_pending, items_processing;
    int64_t claims_active;
};

#define STORE_DEFAULT_MAX_DOC_BYTES ((size_t)1 << 20)

struct store_options {
    int synchronous_full;    /* 1 (default): SQLite synchronous=FULL; 0: NORMAL */
    int busy_timeout_ms;     /* default 5000 */
    int64_t retention_ms;    /* how long terminal jobs are kept, for store_job.expires_at
                                (removal is store_retention_sweep's); 0 = forever */
    int64_t node_timeout_ms; /* shared stores: a node silent this long loses its leases
                                (store_heartbeat); default 15000, 0 = the default */
    size_t max_doc_bytes;    /* largest document a write may leave behind, checked on the
                                result (an upsert's body, a patch's merged document), so
                                repeated patches cannot grow a document without bound;
                                default 1 MiB (--max-item-bytes), 0 = the default */
};

struct store;

/* ---- lifecycle ---------------------------------------------------------------- */

/* Fills opt with defaults. */
void store_options_default(struct store_options *opt);
/* Opens the store named by url ("sqlite:PATH", the directory of PATH is created; or
 * "postgres://..." / "postgresql://...", a libpq connection URL),
 * creating or migrating its schema. [out] *st on success; caller frees with
 * store_close(). Errors: -SLUICE_E_INVALID_PARAMETER (bad url), -SLUICE_E_STORE_IO. */
int store_open(const char *url, const struct store_options *opt, struct store **st);
void store_close(struct store *st);
/* url as it may be logged: the password of a postgres URL ("user:PASSWORD@" and any
 * "password=" parameter) replaced by "***". Caller frees with free(). */
char *store_url_redacted(const char *url);
/* msg with every occurrence of url's password replaced by "***" (libpq's messages may
 * quote a connection string). Caller frees with free(). */
char *store_mask_password(const char *url, const char *msg);
/* 0 when the store answers a trivial query. */
int store_ping(struct store *st);
/* The backend name ("sqlite", "postgres"). */
const char *store_backend(const struct store *st);

/* ---- NODES: several processes on one store ----------------------------------------
 *
 * A PostgreSQL store is shared by every `sluice serve` node pointed at it; a SQLite
 * store belongs to one process. Each store handle is one node with a random id. Its
 * claims record the node; the node proves it is alive with store_heartbeat, and a
 * node silent for longer than store_options.node_timeout_ms (default 15 s) loses its
 * leases at the next heartbeat of any node, whatever their length: the claim's token
 * is cleared (a late store_complete from the silent node gets -SLUICE_E_LEASE_LOST)
 * and the next store_claim takes its items over, counting the lost attempt, as for an
 * expired lease. */

/* 1 when several processes may share the store at once (PostgreSQL): then leases
 * found at start-up may belong to live nodes (do not store_expire_claims them), and
 * Receiving jobs may be other nodes' uploads in progress. 0 for SQLite. */
int store_shared(const struct store *st);
/* Records that this node is alive (call every few seconds) and ends the leases of
 * nodes that went silent. Returns the number of claims whose leases it ended, or a
 * store error. SQLite: a no-op returning 0. Thread-safe. */
int store_heartbeat(struct store *st);
/* This handle's node id ("node_" + 16 chars; "local" for SQLite), valid until
 * store_close. */
const char *store_node_id(const struct store *st);
/* Calls fn(ctx) from a thread of the store whenever work may have become runnable
 * through another node (a committed submit or retry, a released claim; PostgreSQL:
 * LISTEN/NOTIFY, one notification per commit, and once after each reconnect since
 * notifications may have been missed). fn must be quick and must not call the store.
 * fn NULL stops the calls (when it returns, fn is no longer running). Callers keep
 * polling as well: notifications are a hint, never the only way to find work.
 * SQLite: never calls fn (one process: the engine is told directly). 0 or
 * -SLUICE_E_INTERNAL. */
int store_watch(struct store *st, void (*fn)(void *ctx), void *ctx);

/* ---- API keys: only a SHA-256 hex of the key is kept -------------------------- */

/* -SLUICE_E_CONFLICT if key_id exists. */
int store_key_create(struct store *st, const char *key_id, const char *tenant,
                     const char *hash_hex);
/* 1 and [out] tenant when an unrevoked key has this hash, else 0. */
int store_key_lookup(struct store *st, const char *hash_hex, char tenant[STORE_NAME_MAX]);
/* [out] heap array of all keys, oldest first; caller frees with free(). */
int store_key_list(struct store *st, struct store_key **out, size_t *n);
/* 1 revoked (or already revoked), 0 unknown key id. */
int store_key_revoke(struct store *st, const char *key_id);

/* ---- tenants -------------------------------------------------------------------- */

/* Sets the tenant's scheduling weight (STORE_WEIGHT_MIN..MAX, default 1): store_claim
 * gives it that many new ranges per round. The tenant need not have jobs or keys.
 * -SLUICE_E_INVALID_PARAMETER when weight is out of range. */
int store_tenant_set_weight(struct store *st, const char *tenant, int weight);

/* ---- submitting a job ---------------------------------------------------------- */

/* Creates job job_id for tenant in state Receiving (invisible to every read). */
int store_job_begin(struct store *st, const char *tenant, const char *job_id);
/* Appends items (in index order, continuing from earlier calls) in one transaction. */
int store_job_add_items(struct store *st, const char *job_id, const struct store_new_item *items,
                        size_t n);
/* What the calls that create a job return on success (store_job_commit,
 * store_job_retry, store_job_retry_begin; submit_commit passes it on): a new job, or
 * the job an idempotency key already named (nothing new was stored). */
enum store_job_created { STORE_JOB_CREATED = 1, STORE_JOB_REPLAYED = 2 };

/* Makes the job visible as NotStarted with total = pending = `total` items; after it
 * returns STORE_JOB_CREATED (1), the job and all its items survive any crash. [out]
 * out may be NULL. With meta->idem_key set and a job of this tenant already holding
 * that key (created at or after meta->idem_not_before), nothing is committed (the
 * staged job is deleted) and:
 *   - when both hashes are set and differ: -SLUICE_E_IDEMPOTENCY_KEY_REUSED;
 *   - else out is the existing job and it returns STORE_JOB_REPLAYED (2).
 * A key older than idem_not_before is taken over by the new job. A key is held until
 * its job is deleted (store_job_delete, store_retention_sweep) or the key is swept.
 * meta->job_id set: the job becomes visible under that id; -SLUICE_E_CONFLICT when a
 * job (of any tenant) has it already, unless the idempotency key replays first.
 * meta NULL: no metadata. */
int store_job_commit(struct store *st, const char *job_id, const struct store_job_meta *meta,
                     int64_t total, struct store_job *out);
/* Creates job new_job_id (NotStarted) from the Failed items of a terminal job: same
 * workflow, version and client_reference, parent_job = job_id, items (ref, data) in
 * the parent's index order with parent_index set, attempts 0, same-ref order linked
 * anew within the new job. STORE_JOB_CREATED (1) ([out] out, may be NULL), 0 job not
 * found, -SLUICE_E_CONFLICT when the job is not terminal, -SLUICE_E_EMPTY_JOB when it
 * has no failed item. meta (may be NULL) gives only the idempotency key of the retry
 * request (idem_key, body_hash, idem_not_before; the other fields are ignored), with
 * the replay rules of store_job_commit: STORE_JOB_REPLAYED (2) and [out] the job the
 * key names, or -SLUICE_E_IDEMPOTENCY_KEY_REUSED; the key is checked before anything
 * else. */
int store_job_retry(struct store *st, const char *tenant, const char *job_id,
                    const char *new_job_id, const struct store_job_meta *meta,
                    struct store_job *out);
/* store_job_retry without copying the items: the new job is created staging (its
 * total and pending are the parent's failed count; store_job_get shows it NotStarted
 * with staging = 1; it is in no job list and cannot be claimed, canceled, deleted or
 * retried yet: those answer 0 / not found) and store_job_retry_stage copies the items
 * in batches. Same results and idempotency rules as store_job_retry; the key is taken
 * at once, so a replay during staging returns the staging job. A staging retry
 * survives a restart (store_gc_receiving keeps it) and staging goes on. */
int store_job_retry_begin(struct store *st, const char *tenant, const char *job_id,
                          const char *new_job_id, const struct store_job_meta *meta,
                          struct store_job *out);
/* Advances a staging retry (any tenant) by one transaction - the oldest, or with
 * cursor the first after *cursor (0: the oldest), so that callers can take turns
 * between retries: copies up to
 * max_rows more of its parent's failed items (same order, parent_index and same-ref
 * links as store_job_retry, also across batches), or, all copied, finishes it: the
 * job becomes NotStarted and claimable. Progress is derived from the rows, so a crash
 * between calls loses and doubles nothing. If the parent was deleted meanwhile, the
 * retry keeps what was staged (total = pending = that count) or, with nothing
 * staged, is removed. [out] job_id (STORE_ID_MAX bytes): the retry advanced, "" when
 * none; *cursor (when not NULL): its seq, also when the call failed after picking it.
 * Returns STORE_STAGE_IDLE (0) when no retry is staging (after *cursor),
 * STORE_STAGE_ADVANCED (1) when one advanced and needs more calls, STORE_STAGE_FINISHED
 * (2) when this call finished one. On PostgreSQL several nodes may call it at once. */
enum store_stage_result {
    STORE_STAGE_IDLE = 0,
    STORE_STAGE_ADVANCED = 1,
    STORE_STAGE_FINISHED = 2
};
int store_job_retry_stage(struct store *st, size_t max_rows, int64_t *cursor, char *job_id);
/* Deletes a Receiving job and its items (the submit failed). */
int store_job_abort(struct store *st, const char *job_id);
/* Deletes Receiving jobs last touched before older_than (left by a crash). Returns the
 * number of jobs removed. */
int store_gc_receiving(struct store *st, int64_t older_than);
/* Ends every lease at once, as if each had expired: the next store_claim takes the
 * items over and counts the lost attempt; leased deliveries become due again;
 * concurrency units (store_sem_adjust) are freed. For a store that one process owns
 * (SQLite) this is crash recovery at start-up: leases held by the previous, dead
 * process need not be waited out. Returns the number of claims expired. */
int store_expire_claims(struct store *st);
/* Retention, in one short write transaction that removes at most about max_rows rows:
 * idempotency keys created before keys_created_before, then terminal jobs (Succeeded,
 * Failed, Canceled) completed before jobs_completed_before, with their items, claims,
 * step counts and keys. A job is hidden (reads answer 0) in the first transaction
 * that touches it, so a big job whose items take several calls never shows half its
 * items; its row goes with its last items. Jobs that are not terminal are never
 * touched. Returns the number of rows removed: call again while it is > 0. */
int store_retention_sweep(struct store *st, int64_t jobs_completed_before,
                          int64_t keys_created_before, size_t max_rows);

/* ---- reading and controlling jobs (tenant-scoped: another tenant's id is 0) -------- */

/* 1 found, 0 not found; loads the step counts (job.steps). Release out with
 * store_job_release(). */
int store_job_get(struct store *st, const char *tenant, const char *job_id, struct store_job *out);
/* Jobs newest first with seq < before_seq (0 = from the newest); status -1 = any.
 * [out] heap array; free with store_jobs_free(). */
int store_job_list(struct store *st, const char *tenant, int status, int64_t before_seq,
                   size_t limit, struct store_job **out, size_t *n);
/* Cancels: pending items become Canceled (O(1): the cancel point is the claim
 * cursor); claimed items finish. Status becomes Canceling while items are in flight,
 * else Canceled. A terminal job is left unchanged. 1 found (and [out] the job after),
 * 0 not found. */
int store_job_cancel(struct store *st, const char *tenant, const char *job_id,
                     struct store_job *out);
/* Deletes a terminal job and its items. 1 deleted, 0 not found, -SLUICE_E_CONFLICT
 * when not terminal. */
int store_job_delete(struct store *st, const char *tenant, const char *job_id);

/* 1 found, 0 not found (unknown job, other tenant, index out of range). Loads data
 * and events. Release with store_item_release(). */
int store_item_get(struct store *st, const char *tenant, const char *job_id, int64_t index,
                   struct store_item *out);
/* Items of a job in index order with index > after_index (-1 = from the start),
 * filtered by f (NULL = no filter); with_data loads data.
 * Returns 1 and the page, or 0 when the job does not exist for this tenant.
 * [out] heap array; free with store_items_free(). */
int store_item_list(struct store *st, const char *tenant, const char *job_id,
                    const struct store_item_filter *f, int64_t after_index, size_t limit,
                    int with_data, struct store_item **out, size_t *n);

/* ---- the engine's side: claims and completions ---------------------------------- */

/* Claims up to o->max_items runnable items of one job, leased for o->lease_ms:
 * 1. an expired claim is taken over first: its still-pending items count the lost
 *    attempt (attempts + 1, event "LeaseExpired" appended); items that reached
 *    o->max_attempts fail with MaxAttemptsExceeded; on a Canceling/Canceled job they
 *    become Canceled instead; the rest are re-leased under a new token;
 * 2. otherwise a runnable job (NotStarted or Running, cursor < total) gets a new
 *    range from its cursor (NotStarted -> Running, startedAt set), fair between
 *    tenants: the tenant with a runnable job whose round ended longest ago goes first
 *    and keeps its turn for `weight` ranges in a row (store_tenant_set_weight); within
 *    the tenant, the job of highest priority, then the one claimed from least
 *    recently. A NotStarted job waits while its tenant has o->max_active_jobs active
 *    jobs; o->gate may shorten the range or pass over the job (see store_claim_gate).
 * 1 claimed ([out] c, release with store_claim_release()), 0 nothing runnable.
 * A claim is not fsynced on its own: a crash may lose it (its items are then handed
 * out again); the first store_complete under it makes it durable. */
int store_claim(struct store *st, const struct store_claim_opts *o, struct store_claim *c);
/* Records outcomes for items of claim c, in one transaction: applies each outcome's
 * doc ops in order (an op that cannot apply turns the outcome into FAILED with its
 * error code: DocumentNotFound, InvalidData; the ops before it stay applied, like
 * steps that ran before a failing step; the ops of an outcome the caller reports
 * FAILED are not applied), writes status/result/error/failed_step/warnings/events/
 * attempts+1 per item, adds steps[0..nsteps) to the job's step counts (NULL, 0: none),
 * updates the job counts, progress time and throughput window, finishes the
 * job when its last item is terminal, and drops the claim when all its items are
 * done. outs may cover part of the claim; later calls cover the rest. Outcomes for
 * items not pending in c (already completed, outside the claim) are ignored, so a
 * repeated call is harmless; a call that records no outcome adds no step counts.
 * When a doc op cannot apply, the store also sets that outs[i].status = ITEM_FAILED,
 * outs[i].error_code (static string) and outs[i].failed_step (= the op's step) on
 * success of the call; besides these and the ops' [out] fields nothing in outs
 * changes. -SLUICE_E_LEASE_LOST (nothing written) when the claim was taken over. */
int store_complete(struct store *st, const struct store_claim *c, struct store_outcome *outs,
                   size_t n, const struct store_step_count *steps, size_t nsteps);
/* Gives the claim's unfinished items back (graceful shutdown): they become runnable
 * again without counting an attempt (canceled instead when the job is being
 * canceled). c must not be used afterwards. -SLUICE_E_LEASE_LOST when taken over. */
int store_release(struct store *st, const struct store_claim *c);

/* ---- documents (tenant-scoped collections) --------------------------------------- */

/* 1 found (live document), 0 missing or deleted. Release with store_doc_release(). */
int store_doc_get(struct store *st, const char *tenant, const char *collection, const char *ref,
                  struct store_doc *out);
/* Applies op (UPSERT replaces with data; PATCH applies data as an RFC 7396 merge
 * patch; DELETE leaves a tombstone) as a single-entity change. if_match >= 0 requires
 * the current live version to equal it (-SLUICE_E_PRECONDITION_FAILED otherwise; a
 * missing document has version 0, so if_match 0 is "create only", If-None-Match: *,
 * and of concurrent create-only writes of one ref exactly one succeeds). PATCH/DELETE
 * of a missing document: -SLUICE_E_DOCUMENT_NOT_FOUND. A document that would be larger
 * than store_options.max_doc_bytes after the change (an upsert's body, a patch's
 * merged result): -SLUICE_E_ITEM_TOO_LARGE, nothing written.
 * [out] out: the document after (may be NULL), created: 1 when it did not exist before
 * (may be NULL). */
int store_doc_write(struct store *st, const char *tenant, const char *collection, const char *ref,
                    enum store_op op, const char *data, size_t data_len, int64_t if_match,
                    struct store_doc *out, int *created);
/* Live documents ordered by ref with ref > after_ref (NULL = from the start). */
int store_doc_list(struct store *st, const char *tenant, const char *collection,
                   const char *after_ref, size_t limit, struct store_doc **out, size_t *n);

/* Whole-store figures for /metrics. */
int store_stats(struct store *st, struct store_stats *out);
/* A tenant's open work, for admission control: [out] open_jobs (NotStarted, Running,
 * Canceling) and pending (their items not claimed yet). 0 or a store error. */
int store_tenant_load(struct store *st, const char *tenant, int64_t *open_jobs, int64_t *pending);

/* ---- TENANT-OWNED DEFINITIONS: workflows, hooks, limits, secrets ------------------
 *
 * One set of calls for the four kinds of named definition a tenant owns. They are
 * tenant-scoped (another tenant's name is not found, and its delete is 0) and ordered
 * by name in lists; tenant NULL is -SLUICE_E_INVALID_PARAMETER except where a kind
 * below allows it. What differs between the kinds:
 *
 *   WORKFLOW  versioned. put stores text as the next version of name: 1 for a new
 *             name; for a deleted-then-recreated name versions continue from the
 *             highest ever used. CREATED when the name was not live before, REPLACED
 *             when the put adds a version to a live name. get: version 0 = the latest
 *             version of a live (not deleted) workflow; version > 0 = that exact
 *             version, even if the name was deleted since (jobs keep running on it).
 *             list: the latest versions of live workflows. delete removes the name
 *             (its versions stay, deleted).
 *   HOOK      a webhook entry point. Names are unique across tenants, because the
 *             public events URL (/v1/hooks/{name}/events) carries no API key: put of a
 *             name another tenant owns is -SLUICE_E_CONFLICT. get with tenant NULL:
 *             any tenant's hook of that name (the unauthenticated events endpoint).
 *   LIMIT     a named processing limit (the engine's limits module gives it meaning).
 *             list with tenant NULL: every tenant's, ordered by tenant then name
 *             (after_name ignored).
 *   SECRET    the value of {{secrets.NAME}} in the tenant's http header templates
 *             (PUT /v1/secrets/{name}; the API never returns it). list needs a tenant.
 *
 * version is only meaningful for workflows: the other kinds take 0
 * (-SLUICE_E_INVALID_PARAMETER otherwise). */

/* Creates or replaces (a workflow: adds a version to) the tenant's definition name.
 * Returns STORE_PUT_CREATED or STORE_PUT_REPLACED; [out] out (may be NULL): the stored
 * definition, release with store_def_release(). */
int store_def_put(struct store *st, enum store_def_kind kind, const char *tenant, const char *name,
                  const char *text, struct store_def *out);
/* 1 found ([out] out, release with store_def_release()), 0 not found. */
int store_def_get(struct store *st, enum store_def_kind kind, const char *tenant, const char *name,
                  int64_t version, struct store_def *out);
/* Up to limit definitions with name > after_name (NULL: from the start), by name.
 * Returns 0; [out] heap array of n, free with store_defs_free(). */
int store_def_list(struct store *st, enum store_def_kind kind, const char *tenant,
                   const char *after_name, size_t limit, struct store_def **out, size_t *n);
/* 1 deleted, 0 not found. */
int store_def_delete(struct store *st, enum store_def_kind kind, const char *tenant,
                     const char *name);

/* ---- shared rate buckets (processing limits that hold across nodes) ---------------
 *
 * A GCRA bucket kept in the store, so that every node sharing it draws its slots from
 * one schedule. A node leases a few slots at a time and hands them out itself. */

struct store_bucket_lease {
    int64_t now;    /* the store's clock (ms since the epoch) when the slots were taken */
    double tat0;    /* the bucket's theoretical arrival time before them, >= now */
    uint64_t epoch; /* +1 per store_bucket_block: slots leased under an older epoch are void */
};

/* Reserves n slots of bucket id (created fresh on first use), interval_ms apart,
 * tolerance_ms = (burst - 1) * interval_ms: slot k (0 <= k < n) is at
 * max(now, tat0 + k * interval_ms - tolerance_ms) on the store's clock, and the
 * bucket's TAT becomes tat0 + n * interval_ms. n = 0 only reads. 0 or a store error. */
int store_bucket_take(struct store *st, const char *id, double interval_ms, double tolerance_ms,
                      int64_t n, struct store_bucket_lease *out);
/* The upstream asked to wait: no slot of bucket id before until_ms (store clock), and
 * the epoch moves on (slots leased before are void). 0 or a store error. */
int store_bucket_block(struct store *st, const char *id, int64_t until_ms);
/* A concurrency cap shared by the nodes: units of id held per node. delta > 0 takes
 * up to delta more units for this node, as many as cap leaves beside what the other
 * live nodes hold; delta < 0 gives -delta back. [out] *held: this node's units after.
 * A node's units go with it: when it stops heartbeating (shared stores), and at
 * start-up of a store one process owns. 0 or a store error. */
int store_sem_adjust(struct store *st, const char *id, int64_t cap, int64_t delta, int64_t *held);

/* ---- completion callbacks (see COMPLETION CALLBACKS above) ------------------------ */

/* Leases up to max due Pending deliveries (next_at <= now, not leased), oldest due
 * first, for lease_ms: each gets a new token. Returns the number leased ([out] heap
 * array; free with store_deliveries_free()), 0 when none is due. */
int store_delivery_claim(struct store *st, int64_t lease_ms, size_t max,
                         struct store_delivery **out, size_t *n);
/* Records attempt a (may be NULL: no attempt) of the leased delivery d (its id and
 * token) and ends the lease: state DELIVERY_PENDING reschedules it at next_at,
 * DELIVERY_DELIVERED and DELIVERY_ABANDONED are final. 1 recorded,
 * -SLUICE_E_LEASE_LOST (nothing written) when the lease was taken over or the
 * delivery is gone (its job was deleted). */
int store_delivery_record(struct store *st, const struct store_delivery *d,
                          const struct store_delivery_attempt *a, int state, int64_t next_at);
/* The deliveries of a job, oldest first, with their logs. 1 ([out] heap array; free
 * with store_deliveries_free()), 0 when the job does not exist for this tenant. */
int store_delivery_list(struct store *st, const char *tenant, const char *job_id,
                        struct store_delivery **out, size_t *n);
/* A server-wide setting that is set once: stores value under name unless the name
 * has one already, and returns the stored one ([out] *out, caller frees with
 * free()). Used for secrets generated at first start. */
int store_setting_ensure(struct store *st, const char *name, const char *value, char **out);
/* The tenant's callback settings: 1 found ([out] *out), 0 none yet (*out zeroed: the
 * defaults). */
int store_callback_prefs_get(struct store *st, const char *tenant,
                             struct store_callback_prefs *out);
/* Sets the tenant's default callback format (STORE_CB_FORMAT_*, DEFAULT included);
 * the key generations stay. 0, or -SLUICE_E_INVALID_PARAMETER for an unknown format. */
int store_callback_format_set(struct store *st, const char *tenant, int format);
/* Rotates the tenant's signing key in one statement (two rotations at once both count):
 * prev_gen = key_gen, key_gen + 1, prev_until = prev_until. 0 and [out] *out (may be
 * NULL) the settings after. */
int store_callback_key_rotate(struct store *st, const char *tenant, int64_t prev_until,
                              struct store_callback_prefs *out);

/* ---- releasing ------------------------------------------------------------------- */
void store_job_release(struct store_job *j);
void store_jobs_free(struct store_job *jobs, size_t n);
void store_item_release(struct store_item *it);
void store_items_free(struct store_item *items, size_t n);
void store_doc_release(struct store_doc *d);
void store_docs_free(struct store_doc *docs, size_t n);
void store_claim_release(struct store_claim *c);
void store_deliveries_free(struct store_delivery *d, size_t n);
/* Frees d->text (wiped first: it may be a secret) and sets it to NULL. */
void store_def_release(struct store_def *d);
void store_defs_free(struct store_def *defs, size_t n);
/* "Pending", "Delivered", "Abandoned"; NULL for unknown. */
const char *store_delivery_state_name(int state);

/* Names for enums as shown in the API ("NotStarted", "Succeeded", ...); -1 for unknown. */
const char *store_job_status_name(int status);
const char *store_item_status_name(int status);
int store_job_status_parse(const char *s);
int store_item_status_parse(const char *s);

#endif
