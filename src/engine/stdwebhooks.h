/* stdwebhooks.h - the Standard Webhooks signature (https://www.standardwebhooks.com,
 * spec v1) of an outbound callback: the three headers
 *
 *     webhook-id: <msg id>            (the same on every retry: receivers dedupe by it)
 *     webhook-timestamp: <unix seconds of this attempt>
 *     webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")> [...]
 *
 * where the key is the raw bytes a "whsec_<base64>" secret encodes. Several
 * space-separated signatures (one per key) let a receiver verify with either of two
 * secrets during a rotation. Pure functions of their input, thread-safe; deciding which
 * keys sign is engine/callbacks.c's. */
#ifndef SLUICE_ENGINE_STDWEBHOOKS_H
#define SLUICE_ENGINE_STDWEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#define STDWH_KEY_SIZE 32              /* the keys sluice issues */
#define STDWH_SIG_SIZE 48              /* "v1," + 44 base64 + NUL */
#define STDWH_SECRET_SIZE (6 + 44 + 1) /* "whsec_" + base64 of 32 bytes + NUL */
#define STDWH_ID_MAX 128               /* longest msg id signed */

/* The secret a receiver configures for key (STDWH_KEY_SIZE bytes): "whsec_<base64>"
 * into out. */
void stdwh_secret(const unsigned char key[STDWH_KEY_SIZE], char out[STDWH_SECRET_SIZE]);
/* The signature "v1,<base64>" of (msg_id, t, body of len bytes) under key (keylen
 * bytes, 1 to 64: what a whsec_ secret decodes to) into out. 0, or
 * -SLUICE_E_INVALID_PARAMETER when the key has another length, or msg_id is empty,
 * longer than STDWH_ID_MAX or holds a '.' (it would make the signed text ambiguous). */
int stdwh_sign(const unsigned char *key, size_t keylen, const char *msg_id, int64_t t,
               const char *body, size_t len, char out[STDWH_SIG_SIZE]);

#endif
