/* stdwebhooks.c - the Standard Webhooks signature of a callback; see stdwebhooks.h.
 * HMAC-SHA256 and base64 are OpenSSL's (EVP_Q_mac over the joined text: callback
 * bodies are a job monitor, small enough to copy once). */
#include "engine/stdwebhooks.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/errors.h"

void stdwh_secret(const unsigned char key[STDWH_KEY_SIZE], char out[STDWH_SECRET_SIZE])
{
    memcpy(out, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, key, STDWH_KEY_SIZE); /* NUL-terminates */
}

int stdwh_sign(const unsigned char *key, size_t keylen, const char *msg_id, int64_t t,
               const char *body, size_t len, char out[STDWH_SIG_SIZE])
{
    size_t idlen = msg_id ? strlen(msg_id) : 0;
    if (keylen == 0 || keylen > 64 || idlen == 0 || idlen > STDWH_ID_MAX ||
        memchr(msg_id, '.', idlen))
        return -SLUICE_E_INVALID_PARAMETER;
    char ts[24];
    struct buf text = BUF_INIT;
    unsigned char mac[32];
    size_t maclen = 0;
    snprintf(ts, sizeof ts, ".%lld.", (long long)t);
    buf_append(&text, msg_id, idlen);
    buf_puts(&text, ts);
    if (len)
        buf_append(&text, body, len);
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
                   (const unsigned char *)text.data, text.len, mac, sizeof mac, &maclen) ||
        maclen != 32)
        abort(); /* like an allocation failure: libcrypto cannot compute SHA-256 */
    buf_release(&text);
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, 32);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}
