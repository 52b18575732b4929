/* idem.h - the in-flight registry of idempotency keys.
 *
 * A streamed submit stores its items for as long as the upload lasts, and only its
 * commit records the idempotency key. A second request with the same (tenant, key)
 * arriving meanwhile would stage a second copy and learn at its own commit that it
 * was a replay. This registry turns it away at once (409) instead: the first request
 * acquires the pair when its body starts and releases it in the route's on_end.
 * In-process only, which is enough for the SQLite store (one process per store).
 * Thread-safe. */
#ifndef SLUICE_API_IDEM_H
#define SLUICE_API_IDEM_H

/* 1: acquired (the caller must api_idem_release() it), 0: another request holds it. */
int api_idem_acquire(const char *tenant, const char *key);
/* Releases a pair acquired before. */
void api_idem_release(const char *tenant, const char *key);

#endif
