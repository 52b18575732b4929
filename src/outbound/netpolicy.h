/* netpolicy.h - which network addresses outbound requests may connect to (SSRF guard).
 *
 * Pure code: no sockets, no libcurl, no I/O. outbound.c asks netpolicy_check() about
 * every address libcurl is about to connect to (from its open-socket callback, i.e.
 * after name resolution and before the first packet), so every spelling of a host -
 * "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "localhost", a DNS name that resolves
 * to 10.0.0.1 - is judged by the address it really reaches.
 *
 * The rule:
 *   - allowlist empty: an address is allowed unless it is in a blocked range
 *     (netaddr_classify(): loopback, private, link-local, unspecified, multicast,
 *     shared/CGNAT, reserved), including IPv4 addresses embedded in IPv6
 *     (::ffff:a.b.c.d mapped, ::a.b.c.d compatible, 64:ff9b::/96 NAT64, 2002::/16 6to4).
 *   - allowlist non-empty: ONLY allowlisted targets are allowed, blocked or not: an
 *     address covered by a CIDR entry, or any address when the URL's host name
 *     matches a host entry. A host entry therefore trusts whatever that name resolves
 *     to (its DNS is trusted); use CIDR entries to pin addresses.
 *
 * Allowlist entries:
 *   "10.0.0.0/8", "127.0.0.1/32", "::1/128"   CIDR (host bits must be zero)
 *   "127.0.0.1", "::1"                        a single address (/32 or /128)
 *   "api.example.com"                         exactly this host name
 *   "*.example.com"                           any name ending in ".example.com"
 * Host names compare case-insensitively and ignore one trailing dot. A CIDR entry for
 * an IPv4 network also covers the IPv4-mapped IPv6 form of its addresses.
 *
 * Thread-safety: a struct netpolicy is immutable after netpolicy_new(); any number of
 * threads may call netpolicy_check() on it at once. */
#ifndef SLUICE_NETPOLICY_H
#define SLUICE_NETPOLICY_H

#include <stddef.h>
#include <stdint.h>

/* An IP address in network byte order. IPv4 uses bytes[0..3]. */
struct netaddr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t bytes[16];
};

/* Longest text netaddr_format() writes, NUL included (INET6_ADDRSTRLEN). */
#define NETADDR_STRLEN 46

struct netpolicy;

/* Parses a numeric address in the strict inet_pton forms ("10.0.0.1", "::1",
 * "::ffff:127.0.0.1"; not "127.1" or "0x7f.1"). [out] *out. Returns 0, or
 * -SLUICE_E_INVALID_PARAMETER. */
int netaddr_parse(const char *s, struct netaddr *out);

/* Fills *out from a struct sockaddr of family AF_INET or AF_INET6 (len bytes).
 * Returns 0, or -SLUICE_E_INVALID_PARAMETER for any other family or a short len. */
int netaddr_from_sockaddr(const void *sa, size_t len, struct netaddr *out);

/* Writes the address as text into out (NETADDR_STRLEN bytes). Returns out. */
char *netaddr_format(const struct netaddr *a, char out[NETADDR_STRLEN]);

/* Names the blocked range an address is in: "loopback", "private", "link-local",
 * "unspecified", "multicast", "shared address space (CGNAT)", "reserved"; or NULL
 * for an ordinary public address. Embedded IPv4 addresses (see above) are classified
 * as their IPv4 address. The string is static. */
const char *netaddr_classify(const struct netaddr *a);

/* Parses a NULL-terminated allowlist (allow may be NULL = empty) into a new policy.
 * [out] *out, freed with netpolicy_free(). Returns 0, or -SLUICE_E_INVALID_PARAMETER
 * for a malformed entry, with a message naming it in err (errlen bytes, may be 0). */
int netpolicy_new(const char *const *allow, struct netpolicy **out, char *err, size_t errlen);

/* Frees the policy; NULL is a no-op. */
void netpolicy_free(struct netpolicy *p);

/* Number of allowlist entries (0 = default rule: everything but blocked ranges). */
size_t netpolicy_allow_count(const struct netpolicy *p);

/* Decides whether a connection to addr may be opened for a URL whose host is host
 * (as written in the URL, brackets removed; may be NULL when unknown).
 * Returns 0 when allowed. Returns -SLUICE_E_INVALID_PARAMETER when refused and
 * writes "target address 127.0.0.1 is not allowed (loopback)" into msg (msglen
 * bytes, may be 0); with a non-empty allowlist the reason reads "(not in the
 * allowlist)", or "(loopback, not in the allowlist)" for a blocked range. */
int netpolicy_check(const struct netpolicy *p, const char *host, const struct netaddr *addr,
                    char *msg, size_t msglen);

#endif
