/* ids.c - random ids and hashes; see ids.h. */
#include "util/ids.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "util/errors.h"

int ids_random(const char *prefix, size_t n, char *out)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789"; /* 36 symbols */
    unsigned char rnd[128];
    size_t pl = strlen(prefix);
    memcpy(out, prefix, pl);
    size_t w = 0;
    while (w < n) {
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            return -SLUICE_E_INTERNAL;
        for (size_t i = 0; i < sizeof rnd && w < n; i++) {
            if (rnd[i] >= 252) /* 252 = 7 * 36: reject to keep the draw uniform */
                continue;
            out[pl + w++] = alphabet[rnd[i] % 36];
        }
    }
    out[pl + n] = '\0';
    return 0;
}

int ids_job_new(char out[IDS_JOB_LEN + 1])
{
    return ids_random("job_", IDS_JOB_LEN - 4, out);
}

void ids_sha256_hex(const char *s, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(s, n, md, &len, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = "0123456789abcdef"[md[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
    }
    out[64] = '\0';
}

unsigned long long ids_hash64(const void *p, size_t n)
{
    const unsigned char *s = p;
    unsigned long long h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}
