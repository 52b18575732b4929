/* submit.h - turning a stream of parsed items into a stored job.
 *
 * The api layer feeds items from the ingest parser; submit batches them and writes
 * each batch in one store transaction as the body streams in, so memory stays
 * bounded by one batch. The job stays invisible (Receiving) until submit_commit()
 * makes it NotStarted; submit_free() without a commit deletes whatever was staged,
 * so a rejected or interrupted request stores nothing. When that delete fails too
 * (the store is failing: disk full), the job is owed an abort that the janitor
 * retries (submit_retry_aborts) until the store takes it.
 *
 * It also links each item to the previous item with the same ref (prev_idx), which
 * the store uses to apply same-ref items in input order. The link table holds one
 * 64-bit hash and one index per distinct ref (16 bytes; 16 MB at 1,000,000 refs). A
 * hash collision only adds an ordering constraint, never drops one.
 *
 * Not thread-safe: one submit per request. */
#ifndef SLUICE_SUBMIT_H
#define SLUICE_SUBMIT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct submit;

/* New submit for tenant. batch_items: items per store transaction. Never fails. */
struct submit *submit_new(struct store *st, const char *tenant, size_t batch_items);
/* Sets the workflow: a built-in, or a stored definition whose latest version the job
 * will run (-SLUICE_E_UNKNOWN_WORKFLOW, store errors). Sets the client reference
 * (1..256 bytes: -SLUICE_E_INVALID_FIELD). */
int submit_set_workflow(struct submit *s, const char *workflow);
int submit_set_client_reference(struct submit *s, const char *ref);
/* How long an idempotency key replays: a key taken longer ago than this no longer
 * matches, and the janitor sweeps it. */
#define SUBMIT_IDEM_TTL_MS (24LL * 3600 * 1000)
/* A staging batch is written when it holds this many bytes of items (or batch_items
 * items): with max_uploads, what bounds the memory of uploads in progress. */
#define SUBMIT_BATCH_BYTES (2u << 20)

/* Sets the idempotency key the job is committed under (webhook event ids, a client's
 * Idempotency-Key): a second commit of this tenant with the same key within
 * SUBMIT_IDEM_TTL_MS returns the first job instead (see submit_commit). */
void submit_set_idem_key(struct submit *s, const char *key);
/* Sets what the key covers: the hex SHA-256 of the request (see ids_sha256_new).
 * A commit whose key is held with another hash fails. Without it, any request with
 * the key replays (webhook event ids). */
void submit_set_body_hash(struct submit *s, const char hash_hex[65]);
/* Sets the job's public id (a client's Operation-Id) instead of a random one:
 * -SLUICE_E_INVALID_PARAMETER unless ids_job_id_valid(id). Without an idempotency key
 * set, "op:<id>" becomes the key (submit_idem_key), so a repeated id replays. */
int submit_set_job_id(struct submit *s, const char *id);
/* Sets the job's completion callback (stored with the job at commit; see
 * engine/callbacks.h): url an absolute http(s) URL already checked
 * (callback_spec_parse), events a set of STORE_CB_* bits (0 = all), format a
 * STORE_CB_FORMAT_* (DEFAULT: the tenant's). url NULL: none. */
void submit_set_callback(struct submit *s, const char *url, int events, int format);
/* Sets the job's priority within its tenant (STORE_PRIORITY_MIN..MAX, checked by the
 * caller; default 0): store_claim serves a tenant's higher priorities first. */
void submit_set_priority(struct submit *s, int priority);
/* The key the job will be committed under (see above), or NULL. Valid until the next
 * submit_set_* call or submit_free. */
const char *submit_idem_key(const struct submit *s);
/* Adds the next item (index must be the count so far). Copies ref and data. Returns 0
 * or a store error. */
int submit_add(struct submit *s, int64_t index, const char *ref, size_t ref_len, const char *data,
               size_t data_len);
/* Flushes and makes the job visible. Returns STORE_JOB_CREATED, or STORE_JOB_REPLAYED
 * when the idempotency key already named a job of this tenant ([out] job is that job;
 * nothing new is stored). Errors:
 * -SLUICE_E_EMPTY_JOB, -SLUICE_E_INVALID_FIELD (no workflow),
 * -SLUICE_E_IDEMPOTENCY_KEY_REUSED (the key covers another body), -SLUICE_E_CONFLICT
 * (the id of submit_set_job_id names a job of another tenant, or an older one whose
 * key has aged out), store errors.
 * [out] job (release with store_job_release). */
int submit_commit(struct submit *s, struct store_job *job);
/* Items added so far. */
int64_t submit_count(const struct submit *s);
/* Frees; deletes the staged job unless it was committed (or owes the delete to
 * submit_retry_aborts when the store fails it). */
void submit_free(struct submit *s);
/* Deletes the staged jobs of st whose delete failed in submit_free, as far as the
 * store now lets it. Returns how many are still owed. Thread-safe (the janitor calls
 * it each round). At most SUBMIT_ABORTS_MAX are kept; beyond that, the next start's
 * store_gc_receiving removes them. */
#define SUBMIT_ABORTS_MAX 4096
size_t submit_retry_aborts(struct store *st);

#endif
