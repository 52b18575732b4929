/* netpolicy.c - the SSRF address policy behind netpolicy.h.
 *
 * Two small tables of blocked ranges (IPv4, IPv6) and a parsed allowlist of CIDRs and
 * host patterns. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64,
 * 6to4) are unwrapped first, so ::ffff:127.0.0.1 is loopback exactly like 127.0.0.1.
 * Everything here is pure and is unit-tested in tests/unit/test_netpolicy.c. */
#include "outbound/netpolicy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "util/errors.h"
#include "util/xmalloc.h"

struct cidr {
    struct netaddr net;
    unsigned bits;
};

struct range {
    int family;
    uint8_t prefix[16];
    unsigned bits;
    const char *name; /* NULL: an IPv4-embedding range, classify the embedded address */
    int v4_at;        /* with name == NULL: offset of the embedded IPv4 address */
};

/* Ranges a request may not reach unless allowlisted. Order matters only in that the
 * first match names the range. */
static const struct range blocked[] = {
    {AF_INET, {0}, 8, "unspecified", 0},
    {AF_INET, {10}, 8, "private", 0},
    {AF_INET, {100, 64}, 10, "shared address space (CGNAT)", 0},
    {AF_INET, {127}, 8, "loopback", 0},
    {AF_INET, {169, 254}, 16, "link-local", 0},
    {AF_INET, {172, 16}, 12, "private", 0},
    {AF_INET, {192, 0, 0}, 24, "reserved", 0},
    {AF_INET, {192, 0, 2}, 24, "reserved", 0},
    {AF_INET, {192, 168}, 16, "private", 0},
    {AF_INET, {198, 18}, 15, "reserved", 0},
    {AF_INET, {198, 51, 100}, 24, "reserved", 0},
    {AF_INET, {203, 0, 113}, 24, "reserved", 0},
    {AF_INET, {224}, 4, "multicast", 0},
    {AF_INET, {240}, 4, "reserved", 0}, /* includes 255.255.255.255 */

    {AF_INET6, {0}, 128, "unspecified", 0},
    {AF_INET6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback", 0},
    {AF_INET6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, NULL, 12}, /* v4-mapped */
    {AF_INET6, {0}, 96, NULL, 12},                                        /* v4-compatible */
    {AF_INET6, {0, 0x64, 0xff, 0x9b}, 96, NULL, 12},                      /* NAT64 */
    {AF_INET6, {0, 0x64, 0xff, 0x9b, 0, 1}, 48, "private", 0},            /* local NAT64 */
    {AF_INET6, {0x20, 0x02}, 16, NULL, 2},                                /* 6to4 */
    {AF_INET6, {0x01, 0x00}, 64, "reserved", 0},                          /* discard-only */
    {AF_INET6, {0x20, 0x01, 0x0d, 0xb8}, 32, "reserved", 0},              /* documentation */
    {AF_INET6, {0xfc}, 7, "private", 0},                                  /* ULA */
    {AF_INET6, {0xfe, 0x80}, 10, "link-local", 0},
    {AF_INET6, {0xfe, 0xc0}, 10, "private", 0}, /* deprecated site-local */
    {AF_INET6, {0xff}, 8, "multicast", 0},
};

struct netpolicy {
    struct cidr *cidrs;
    size_t ncidrs;
    char **hosts; /* lowercase; "*.example.com" or "example.com" */
    size_t nhosts;
};

static size_t addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

/* Does the first bits bits of a equal those of prefix? */
static int prefix_match(const uint8_t *a, const uint8_t *prefix, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, prefix, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (prefix[whole] & mask);
}

int netaddr_parse(const char *s, struct netaddr *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return -SLUICE_E_INVALID_PARAMETER;
    if (inet_pton(AF_INET, s, out->bytes) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out->bytes) == 1) {
        out->family = AF_INET6;
        return 0;
    }
    return -SLUICE_E_INVALID_PARAMETER;
}

int netaddr_from_sockaddr(const void *sa, size_t len, struct netaddr *out)
{
    memset(out, 0, sizeof *out);
    sa_family_t family;
    if (!sa || len < sizeof family)
        return -SLUICE_E_INVALID_PARAMETER;
    memcpy(&family, (const char *)sa + offsetof(struct sockaddr, sa_family), sizeof family);
    if (family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in);
        out->family = AF_INET;
        memcpy(out->bytes, &in.sin_addr, 4);
        return 0;
    }
    if (family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        out->family = AF_INET6;
        memcpy(out->bytes, &in6.sin6_addr, 16);
        return 0;
    }
    return -SLUICE_E_INVALID_PARAMETER;
}

char *netaddr_format(const struct netaddr *a, char out[NETADDR_STRLEN])
{
    if (!inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->bytes, out, NETADDR_STRLEN))
        snprintf(out, NETADDR_STRLEN, "(bad address)");
    return out;
}

const char *netaddr_classify(const struct netaddr *a)
{
    for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++) {
        const struct range *r = &blocked[i];
        if (r->family != a->family || !prefix_match(a->bytes, r->prefix, r->bits))
            continue;
        if (r->name)
            return r->name;
        struct netaddr v4 = {.family = AF_INET};
        memcpy(v4.bytes, a->bytes + r->v4_at, 4);
        return netaddr_classify(&v4);
    }
    return NULL;
}

/* If a is an IPv4-mapped IPv6 address, stores the IPv4 address in *v4. */
static int unmap(const struct netaddr *a, struct netaddr *v4)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a->family != AF_INET6 || memcmp(a->bytes, mapped, sizeof mapped) != 0)
        return 0;
    memset(v4, 0, sizeof *v4);
    v4->family = AF_INET;
    memcpy(v4->bytes, a->bytes + 12, 4);
    return 1;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *entry)
{
    if (errlen)
        snprintf(err, errlen, fmt, entry);
}

/* Parses "addr" or "addr/bits". Returns 1 when s is a CIDR, 0 when it is not an
 * address at all (so maybe a host name), negative when it is a malformed CIDR. */
static int parse_cidr(const char *s, struct cidr *out)
{
    char tmp[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof tmp)
        return slash ? -1 : 0;
    memcpy(tmp, s, alen);
    tmp[alen] = '\0';
    if (netaddr_parse(tmp, &out->net) < 0)
        return slash ? -1 : 0;
    unsigned max = out->net.family == AF_INET ? 32 : 128;
    if (!slash) {
        out->bits = max;
        return 1;
    }
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3)
        return -1;
    unsigned bits = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        bits = bits * 10 + (unsigned)(*p - '0');
    }
    if (bits > max)
        return -1;
    /* Host bits must be zero: "10.0.0.1/8" is more likely a typo than a network. */
    struct netaddr masked = out->net;
    for (unsigned i = bits; i < max; i++)
        masked.bytes[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    if (memcmp(masked.bytes, out->net.bytes, addr_len(out->net.family)) != 0)
        return -2;
    out->bits = bits;
    return 1;
}

/* Validates a host pattern and returns a lowercase copy without a trailing dot, or
 * NULL. Labels are letters, digits, '-' and '_'; "*." may lead. */
static char *parse_host(const char *s)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == '.')
        n--;
    const char *p = s;
    if (n >= 2 && p[0] == '*' && p[1] == '.')
        p += 2;
    const char *end = s + n;
    if (p == end || *p == '.' || end[-1] == '.' || end - s > 253)
        return NULL;
    for (const char *q = p; q < end; q++) {
        unsigned char c = (unsigned char)*q;
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.'))
            return NULL;
        if (c == '.' && q[1] == '.')
            return NULL;
    }
    char *h = xstrndup(s, n);
    for (char *q = h; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    return h;
}

int netpolicy_new(const char *const *allow, struct netpolicy **out, char *err, size_t errlen)
{
    int rc = -SLUICE_E_INVALID_PARAMETER;
    size_t n = 0;
    while (allow && allow[n])
        n++;
    struct netpolicy *p = xcalloc(1, sizeof *p);
    p->cidrs = xcalloc(n ? n : 1, sizeof *p->cidrs);
    p->hosts = xcalloc(n ? n : 1, sizeof *p->hosts);
    if (errlen)
        err[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *e = allow[i];
        struct cidr c;
        int r = parse_cidr(e, &c);
        if (r == 1) {
            p->cidrs[p->ncidrs++] = c;
            continue;
        }
        if (r == -2) {
            set_err(err, errlen, "allowlist entry \"%s\" has host bits set", e);
            goto out;
        }
        if (r < 0) {
            set_err(err, errlen, "allowlist entry \"%s\" is not a valid CIDR", e);
            goto out;
        }
        if (strchr(e, ':')) {
            set_err(err, errlen,
                    "allowlist entry \"%s\" is neither an address nor a host name (no ports)", e);
            goto out;
        }
        char *h = parse_host(e);
        if (!h) {
            set_err(err, errlen, "allowlist entry \"%s\" is not a valid host name", e);
            goto out;
        }
        p->hosts[p->nhosts++] = h;
    }
    *out = p;
    p = NULL;
    rc = 0;
out:
    netpolicy_free(p);
    return rc;
}

void netpolicy_free(struct netpolicy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nhosts; i++)
        free(p->hosts[i]);
    free(p->hosts);
    free(p->cidrs);
    free(p);
}

size_t netpolicy_allow_count(const struct netpolicy *p)
{
    return p->ncidrs + p->nhosts;
}

static int cidr_covers(const struct netpolicy *p, const struct netaddr *a)
{
    for (size_t i = 0; i < p->ncidrs; i++) {
        const struct cidr *c = &p->cidrs[i];
        if (c->net.family == a->family && prefix_match(a->bytes, c->net.bytes, c->bits))
            return 1;
    }
    return 0;
}

/* Case-insensitive match of a URL host against the host patterns. */
static int host_allowed(const struct netpolicy *p, const char *host)
{
    if (!host || !*host)
        return 0;
    size_t n = strlen(host);
    if (host[n - 1] == '.')
        n--;
    for (size_t i = 0; i < p->nhosts; i++) {
        const char *pat = p->hosts[i];
        if (pat[0] == '*') {
            size_t sl = strlen(pat + 1); /* ".example.com" */
            if (n > sl && strncasecmp(host + n - sl, pat + 1, sl) == 0)
                return 1;
        } else if (strlen(pat) == n && strncasecmp(host, pat, n) == 0) {
            return 1;
        }
    }
    return 0;
}

int netpolicy_check(const struct netpolicy *p, const char *host, const struct netaddr *addr,
                    char *msg, size_t msglen)
{
    char text[NETADDR_STRLEN];
    const char *why, *cls = NULL;
    if (msglen)
        msg[0] = '\0';
    if (addr->family != AF_INET && addr->family != AF_INET6) {
        if (msglen)
            snprintf(msg, msglen, "target address family %d is not allowed", addr->family);
        return -SLUICE_E_INVALID_PARAMETER;
    }
    if (netpolicy_allow_count(p) > 0) {
        struct netaddr v4;
        if (cidr_covers(p, addr) || (unmap(addr, &v4) && cidr_covers(p, &v4)) ||
            host_allowed(p, host))
            return 0;
        why = "not in the allowlist";
        cls = netaddr_classify(addr);
    } else {
        why = netaddr_classify(addr);
        if (!why)
            return 0;
    }
    if (msglen)
        snprintf(msg, msglen, "target address %s is not allowed (%s%s%s)",
                 netaddr_format(addr, text), cls ? cls : "", cls ? ", " : "", why);
    return -SLUICE_E_INVALID_PARAMETER;
}
