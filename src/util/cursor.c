/* cursor.c - opaque page cursors (see cursor.h): one AES-128 block per cursor. */
#include "util/cursor.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* One block through AES-128-ECB: a single block needs no chaining mode. */
static int aes_block(const unsigned char key[CURSOR_KEY_BYTES], int encrypt,
                     const unsigned char in[16], unsigned char out[16])
{
    int ok = 0, n = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_CipherInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL, encrypt) == 1 &&
        EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 && EVP_CipherUpdate(ctx, out, &n, in, 16) == 1 &&
        n == 16)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* The block: 8 bytes of position (big-endian), 8 of SHA-256(tag). */
static void plain_block(const char *tag, int64_t pos, unsigned char blk[16])
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tag, strlen(tag), h);
    for (int i = 0; i < 8; i++)
        blk[i] = (unsigned char)((uint64_t)pos >> (56 - 8 * i));
    memcpy(blk + 8, h, 8);
}

void cursor_seal(const unsigned char key[CURSOR_KEY_BYTES], const char *tag, int64_t pos,
                 char out[CURSOR_TEXT_MAX])
{
    unsigned char blk[16], enc[16];
    plain_block(tag, pos, blk);
    if (aes_block(key, 1, blk, enc) < 0)
        abort(); /* EVP out of memory: the xmalloc policy */
    /* 128 bits as 22 base64url digits: 21 x 6 bits, then the last 2 */
    uint32_t acc = 0;
    int bits = 0, o = 0;
    for (int i = 0; i < 16; i++) {
        acc = (acc << 8) | enc[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = B64URL[(acc >> bits) & 63];
        }
    }
    out[o++] = B64URL[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

int cursor_open(const unsigned char key[CURSOR_KEY_BYTES], const char *tag, const char *text,
                int64_t *pos)
{
    if (!text || strlen(text) != CURSOR_TEXT_MAX - 1)
        return -1;
    unsigned char enc[16], blk[16], want[16];
    uint32_t acc = 0;
    int bits = 0, o = 0;
    for (int i = 0; i < CURSOR_TEXT_MAX - 1; i++) {
        const char *p = strchr(B64URL, text[i]);
        if (!p || !text[i])
            return -1;
        acc = (acc << 6) | (uint32_t)(p - B64URL);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o < 16)
                enc[o++] = (unsigned char)(acc >> bits);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) /* the unused low bits of the last digit */
        return -1;
    if (aes_block(key, 0, enc, blk) < 0)
        return -1;
    int64_t p = 0;
    for (int i = 0; i < 8; i++)
        p = (int64_t)(((uint64_t)p << 8) | blk[i]);
    plain_block(tag, p, want);
    if (p < 0 || memcmp(blk + 8, want + 8, 8) != 0)
        return -1;
    *pos = p;
    return 0;
}

int cursor_key_parse(const char *hex, unsigned char key[CURSOR_KEY_BYTES])
{
    if (!hex || strlen(hex) != 2 * CURSOR_KEY_BYTES)
        return -1;
    for (int i = 0; i < CURSOR_KEY_BYTES; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = hex[2 * i + k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return -1;
        }
        key[i] = (unsigned char)v;
    }
    return 0;
}

int cursor_key_new_hex(char hex[2 * CURSOR_KEY_BYTES + 1])
{
    unsigned char k[CURSOR_KEY_BYTES];
    if (RAND_bytes(k, sizeof k) != 1)
        return -1;
    for (int i = 0; i < CURSOR_KEY_BYTES; i++) {
        hex[2 * i] = "0123456789abcdef"[k[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[k[i] & 15];
    }
    hex[2 * CURSOR_KEY_BYTES] = '\0';
    return 0;
}
