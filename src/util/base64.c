/* base64.c - strict standard base64 decoding; see base64.h. */
#include "util/base64.h"

/* The 6-bit value of one character of the standard alphabet, or -1. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int base64_decode(const char *s, size_t len, unsigned char *out, size_t cap, size_t *outlen)
{
    size_t pad = 0, o = 0;
    *outlen = 0;
    if (len % 4 != 0)
        return -1;
    if (len && s[len - 1] == '=')
        pad = len >= 2 && s[len - 2] == '=' ? 2 : 1;
    if (len / 4 * 3 - pad > cap)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        unsigned long v = 0;
        int n = (i + 4 == len) ? 4 - (int)pad : 4; /* significant characters here */
        for (int k = 0; k < 4; k++) {
            int x = k < n ? sextet((unsigned char)s[i + (size_t)k]) : 0;
            if (x < 0)
                return -1;
            v = v << 6 | (unsigned long)x;
        }
        /* Bits below the last whole byte must be zero, or two texts would decode to
         * the same bytes. */
        if ((n == 2 && (v & 0xffff)) || (n == 3 && (v & 0xff)))
            return -1;
        int bytes = n - 1;
        for (int k = 0; k < bytes; k++)
            out[o++] = (unsigned char)(v >> (16 - 8 * k));
    }
    *outlen = o;
    return 0;
}
