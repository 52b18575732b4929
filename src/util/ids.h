/* ids.h - random identifiers and key hashing (OpenSSL libcrypto).
 *
 * Job ids are "job_" + 24 lowercase base32 chars (120 random bits), sortable only by
 * chance: ordering uses a separate sequence. API keys are "slk_" + 43 base62-ish
 * chars (256 random bits); only their SHA-256 is stored. Thread-safe. */
#ifndef SLUICE_IDS_H
#define SLUICE_IDS_H

#include <stddef.h>

#define IDS_JOB_LEN 28 /* strlen of a job id */
#define IDS_KEY_PREFIX "slk_"

/* Fills out (IDS_JOB_LEN + 1 bytes) with a new job id. Returns 0 or -SLUICE_E_INTERNAL. */
int ids_job_new(char out[IDS_JOB_LEN + 1]);
/* Nonzero when s is a valid client-chosen job id (Operation-Id): 1 to IDS_JOB_ID_MAX
 * chars of [A-Za-z0-9_.-], the first one a letter or digit (so never "." or ".."). */
#define IDS_JOB_ID_MAX 64
int ids_job_id_valid(const char *s);
/* Nonzero when s is 1 to max characters of [A-Za-z0-9_-] or of extra (NULL: none), the
 * alphabet of the names clients give (collections, steps, secrets, headers). */
int ids_name_valid(const char *s, size_t max, const char *extra);
/* Fills out with prefix + n random chars from [a-z0-9]; out holds strlen(prefix)+n+1. */
int ids_random(const char *prefix, size_t n, char *out);
/* Hex SHA-256 of s (65 bytes with NUL). */
void ids_sha256_hex(const char *s, size_t n, char out[65]);
/* Incremental SHA-256, for bodies hashed as they stream in (idempotency keys).
 * ids_sha256_new() never fails (allocation failure aborts); feed bytes with
 * ids_sha256_update(); ids_sha256_finish() writes the hex digest (65 bytes with NUL)
 * and ends the hash (further updates are ignored, finish repeats the same digest);
 * free with ids_sha256_free() (NULL is fine). One hash per thread at a time. */
struct ids_sha256;
struct ids_sha256 *ids_sha256_new(void);
void ids_sha256_update(struct ids_sha256 *h, const void *p, size_t n);
void ids_sha256_finish(struct ids_sha256 *h, char out[65]);
void ids_sha256_free(struct ids_sha256 *h);
/* 64-bit hash of bytes (FNV-1a); not cryptographic. */
unsigned long long ids_hash64(const void *p, size_t n);

#endif
