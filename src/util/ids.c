/* ids.c - random ids and hashes; see ids.h. */
#include "util/ids.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/xmalloc.h"

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

static void hex32(const unsigned char md[32], char out[65])
{
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = "0123456789abcdef"[md[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
    }
    out[64] = '\0';
}

int ids_name_valid(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || (extra && strchr(extra, *s))))
            return 0;
    return 1;
}

int ids_job_id_valid(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++) {
        char ch = s[n];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '.' || ch == '-';
        /* The first character is a letter or digit: "." and ".." are path segments
         * every client normalises away (/v1/jobs/.. is /v1/), and "-x" reads as an
         * option on a command line. */
        if (n == 0 && (ch == '_' || ch == '.' || ch == '-'))
            return 0;
        if (!ok || n >= IDS_JOB_ID_MAX)
            return 0;
    }
    return n > 0;
}

void ids_sha256_hex(const char *s, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(s, n, md, &len, EVP_sha256(), NULL);
    hex32(md, out);
}

struct ids_sha256 {
    EVP_MD_CTX *ctx;
    int done;
    char hex[65];
};

struct ids_sha256 *ids_sha256_new(void)
{
    struct ids_sha256 *h = xcalloc(1, sizeof *h);
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        fputs("sluice: out of memory (SHA-256 context)\n", stderr); /* as xmalloc does */
        abort();
    }
    return h;
}

void ids_sha256_update(struct ids_sha256 *h, const void *p, size_t n)
{
    if (!h->done && n)
        EVP_DigestUpdate(h->ctx, p, n);
}

void ids_sha256_finish(struct ids_sha256 *h, char out[65])
{
    if (!h->done) {
        unsigned char md[32];
        unsigned int len = 0;
        EVP_DigestFinal_ex(h->ctx, md, &len);
        hex32(md, h->hex);
        h->done = 1;
    }
    memcpy(out, h->hex, 65);
}

void ids_sha256_free(struct ids_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
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
