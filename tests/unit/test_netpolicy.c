/* test_netpolicy.c - the SSRF address policy: parsing, blocked ranges, allowlists. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "outbound/netpolicy.h"
#include "testhelp.h"
#include "util/errors.h"

/* Classification of a numeric address; "public" for NULL, "bad" if unparseable. */
static const char *cls(const char *s)
{
    struct netaddr a;
    if (netaddr_parse(s, &a) < 0)
        return "bad";
    const char *c = netaddr_classify(&a);
    return c ? c : "public";
}

/* Checks addr against p for host; returns "ok" or the refusal message. */
static const char *judge(const struct netpolicy *p, const char *host, const char *addr)
{
    static char msg[256];
    struct netaddr a;
    if (netaddr_parse(addr, &a) < 0)
        return "bad";
    int rc = netpolicy_check(p, host, &a, msg, sizeof msg);
    if (rc == 0)
        return "ok";
    if (rc != -SLUICE_E_INVALID_PARAMETER)
        return "wrong rc";
    return msg;
}

TEST(parse_addresses)
{
    struct netaddr a;
    CHECK_EQ_INT(netaddr_parse("10.1.2.3", &a), 0);
    CHECK_EQ_INT(a.family, AF_INET);
    CHECK_EQ_INT(a.bytes[0], 10);
    CHECK_EQ_INT(a.bytes[3], 3);
    CHECK_EQ_INT(netaddr_parse("::1", &a), 0);
    CHECK_EQ_INT(a.family, AF_INET6);
    CHECK_EQ_INT(a.bytes[15], 1);
    CHECK_EQ_INT(netaddr_parse("::ffff:127.0.0.1", &a), 0);
    CHECK_EQ_INT(a.family, AF_INET6);
    CHECK_EQ_INT(a.bytes[10], 0xff);
    CHECK_EQ_INT(a.bytes[12], 127);
    char text[NETADDR_STRLEN];
    CHECK_EQ_STR(netaddr_format(&a, text), "::ffff:127.0.0.1");
    /* The loose spellings resolve through getaddrinfo in libcurl, not here. */
    CHECK_EQ_INT(netaddr_parse("127.1", &a), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(netaddr_parse("0x7f.1", &a), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(netaddr_parse("2130706433", &a), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(netaddr_parse("example.com", &a), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(netaddr_parse("", &a), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(netaddr_parse(NULL, &a), -SLUICE_E_INVALID_PARAMETER);
}

TEST(from_sockaddr)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(80)};
    in.sin_addr.s_addr = htonl(0x7f000001);
    struct netaddr a;
    char text[NETADDR_STRLEN];
    CHECK_EQ_INT(netaddr_from_sockaddr(&in, sizeof in, &a), 0);
    CHECK_EQ_STR(netaddr_format(&a, text), "127.0.0.1");

    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
    CHECK_EQ_INT(netaddr_from_sockaddr(&in6, sizeof in6, &a), 0);
    CHECK_EQ_STR(netaddr_format(&a, text), "fe80::1");
    CHECK_EQ_INT(netaddr_from_sockaddr(&in6, sizeof in, &a), -SLUICE_E_INVALID_PARAMETER);

    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK_EQ_INT(netaddr_from_sockaddr(&un, sizeof un, &a), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(netaddr_from_sockaddr(NULL, 0, &a), -SLUICE_E_INVALID_PARAMETER);
}

TEST(blocked_ipv4)
{
    CHECK_EQ_STR(cls("0.0.0.0"), "unspecified");
    CHECK_EQ_STR(cls("0.1.2.3"), "unspecified");
    CHECK_EQ_STR(cls("10.0.0.1"), "private");
    CHECK_EQ_STR(cls("10.255.255.255"), "private");
    CHECK_EQ_STR(cls("100.64.0.1"), "shared address space (CGNAT)");
    CHECK_EQ_STR(cls("100.127.255.254"), "shared address space (CGNAT)");
    CHECK_EQ_STR(cls("100.128.0.1"), "public");
    CHECK_EQ_STR(cls("100.63.255.255"), "public");
    CHECK_EQ_STR(cls("127.0.0.1"), "loopback");
    CHECK_EQ_STR(cls("127.255.255.254"), "loopback");
    CHECK_EQ_STR(cls("169.254.169.254"), "link-local");
    CHECK_EQ_STR(cls("169.254.0.1"), "link-local");
    CHECK_EQ_STR(cls("172.16.0.1"), "private");
    CHECK_EQ_STR(cls("172.31.255.255"), "private");
    CHECK_EQ_STR(cls("172.15.255.255"), "public");
    CHECK_EQ_STR(cls("172.32.0.0"), "public");
    CHECK_EQ_STR(cls("192.168.1.1"), "private");
    CHECK_EQ_STR(cls("192.169.0.1"), "public");
    CHECK_EQ_STR(cls("224.0.0.1"), "multicast");
    CHECK_EQ_STR(cls("239.255.255.250"), "multicast");
    CHECK_EQ_STR(cls("240.0.0.1"), "reserved");
    CHECK_EQ_STR(cls("255.255.255.255"), "reserved");
    CHECK_EQ_STR(cls("198.18.0.1"), "reserved");
    CHECK_EQ_STR(cls("192.0.2.1"), "reserved");
    CHECK_EQ_STR(cls("8.8.8.8"), "public");
    CHECK_EQ_STR(cls("1.1.1.1"), "public");
    CHECK_EQ_STR(cls("93.184.216.34"), "public");
}

TEST(blocked_ipv6)
{
    CHECK_EQ_STR(cls("::"), "unspecified");
    CHECK_EQ_STR(cls("::1"), "loopback");
    CHECK_EQ_STR(cls("fc00::1"), "private");
    CHECK_EQ_STR(cls("fd12:3456::1"), "private");
    CHECK_EQ_STR(cls("fe80::1"), "link-local");
    CHECK_EQ_STR(cls("febf:ffff::1"), "link-local");
    CHECK_EQ_STR(cls("fec0::1"), "private");
    CHECK_EQ_STR(cls("ff02::1"), "multicast");
    CHECK_EQ_STR(cls("ff0e::1"), "multicast");
    CHECK_EQ_STR(cls("2001:db8::1"), "reserved");
    CHECK_EQ_STR(cls("2001:4860:4860::8888"), "public");
    CHECK_EQ_STR(cls("2606:4700:4700::1111"), "public");
    CHECK_EQ_STR(cls("fb00::1"), "public");
}

TEST(embedded_ipv4)
{
    /* IPv4-mapped */
    CHECK_EQ_STR(cls("::ffff:127.0.0.1"), "loopback");
    CHECK_EQ_STR(cls("::ffff:7f00:1"), "loopback");
    CHECK_EQ_STR(cls("::ffff:10.0.0.1"), "private");
    CHECK_EQ_STR(cls("::ffff:169.254.169.254"), "link-local");
    CHECK_EQ_STR(cls("::ffff:100.64.1.1"), "shared address space (CGNAT)");
    CHECK_EQ_STR(cls("::ffff:0.0.0.0"), "unspecified");
    CHECK_EQ_STR(cls("::ffff:224.0.0.1"), "multicast");
    CHECK_EQ_STR(cls("::ffff:8.8.8.8"), "public");
    /* IPv4-compatible, NAT64, 6to4 */
    CHECK_EQ_STR(cls("::127.0.0.1"), "loopback");
    CHECK_EQ_STR(cls("::192.168.0.1"), "private");
    CHECK_EQ_STR(cls("64:ff9b::7f00:1"), "loopback");
    CHECK_EQ_STR(cls("64:ff9b::a9fe:a9fe"), "link-local");
    CHECK_EQ_STR(cls("64:ff9b::808:808"), "public");
    CHECK_EQ_STR(cls("2002:7f00:1::"), "loopback");
    CHECK_EQ_STR(cls("2002:a00:1::1"), "private");
    CHECK_EQ_STR(cls("2002:808:808::1"), "public");
}

TEST(default_policy)
{
    struct netpolicy *p = NULL;
    char err[128];
    CHECK_EQ_INT(netpolicy_new(NULL, &p, err, sizeof err), 0);
    CHECK_EQ_INT(netpolicy_allow_count(p), 0);
    CHECK_EQ_STR(judge(p, "127.0.0.1", "127.0.0.1"),
                 "target address 127.0.0.1 is not allowed (loopback)");
    CHECK_EQ_STR(judge(p, "localhost", "::1"), "target address ::1 is not allowed (loopback)");
    CHECK_EQ_STR(judge(p, "::ffff:127.0.0.1", "::ffff:127.0.0.1"),
                 "target address ::ffff:127.0.0.1 is not allowed (loopback)");
    CHECK_EQ_STR(judge(p, "metadata", "169.254.169.254"),
                 "target address 169.254.169.254 is not allowed (link-local)");
    CHECK_EQ_STR(judge(p, "x", "10.0.0.1"), "target address 10.0.0.1 is not allowed (private)");
    CHECK_EQ_STR(judge(p, "x", "0.0.0.0"), "target address 0.0.0.0 is not allowed (unspecified)");
    CHECK_EQ_STR(judge(p, "x", "fd00::1"), "target address fd00::1 is not allowed (private)");
    CHECK_EQ_STR(judge(p, "example.com", "93.184.216.34"), "ok");
    CHECK_EQ_STR(judge(p, NULL, "2606:4700:4700::1111"), "ok");
    netpolicy_free(p);

    /* An empty list is the default policy too. */
    const char *const empty[] = {NULL};
    CHECK_EQ_INT(netpolicy_new(empty, &p, err, sizeof err), 0);
    CHECK_EQ_STR(judge(p, "x", "192.168.0.1"),
                 "target address 192.168.0.1 is not allowed (private)");
    CHECK_EQ_STR(judge(p, "x", "8.8.8.8"), "ok");
    netpolicy_free(p);
}

TEST(allow_by_cidr)
{
    const char *const allow[] = {"127.0.0.1/32", "10.0.0.0/8",  "::1/128",
                                 "fd00::/8",     "192.168.7.7", NULL};
    struct netpolicy *p = NULL;
    char err[128];
    CHECK_EQ_INT(netpolicy_new(allow, &p, err, sizeof err), 0);
    CHECK_EQ_INT(netpolicy_allow_count(p), 5);
    CHECK_EQ_STR(judge(p, "127.0.0.1", "127.0.0.1"), "ok");
    CHECK_EQ_STR(judge(p, "x", "127.0.0.2"),
                 "target address 127.0.0.2 is not allowed (loopback, not in the allowlist)");
    CHECK_EQ_STR(judge(p, "x", "10.200.3.4"), "ok");
    CHECK_EQ_STR(judge(p, "x", "11.0.0.1"),
                 "target address 11.0.0.1 is not allowed (not in the allowlist)");
    CHECK_EQ_STR(judge(p, "x", "::1"), "ok");
    CHECK_EQ_STR(judge(p, "x", "::ffff:127.0.0.1"), "ok"); /* mapped form of an allowed v4 */
    CHECK_EQ_STR(judge(p, "x", "::ffff:127.0.0.2"),
                 "target address ::ffff:127.0.0.2 is not allowed (loopback, not in the allowlist)");
    CHECK_EQ_STR(judge(p, "x", "fd12::1"), "ok");
    CHECK_EQ_STR(judge(p, "x", "fe80::1"),
                 "target address fe80::1 is not allowed (link-local, not in the allowlist)");
    CHECK_EQ_STR(judge(p, "x", "192.168.7.7"), "ok");
    CHECK_EQ_STR(judge(p, "x", "192.168.7.8"),
                 "target address 192.168.7.8 is not allowed (private, not in the allowlist)");
    /* With an allowlist, public addresses are refused too. */
    CHECK_EQ_STR(judge(p, "example.com", "93.184.216.34"),
                 "target address 93.184.216.34 is not allowed (not in the allowlist)");
    netpolicy_free(p);

    const char *const all4[] = {"0.0.0.0/0", NULL};
    CHECK_EQ_INT(netpolicy_new(all4, &p, err, sizeof err), 0);
    CHECK_EQ_STR(judge(p, "x", "127.0.0.1"), "ok");
    CHECK_EQ_STR(judge(p, "x", "8.8.8.8"), "ok");
    CHECK(strcmp(judge(p, "x", "::1"), "ok") != 0);
    netpolicy_free(p);
}

TEST(allow_by_host)
{
    const char *const allow[] = {"api.example.com", "*.svc.internal", "LOCALHOST", NULL};
    struct netpolicy *p = NULL;
    char err[128];
    CHECK_EQ_INT(netpolicy_new(allow, &p, err, sizeof err), 0);
    CHECK_EQ_STR(judge(p, "api.example.com", "10.0.0.5"), "ok");
    CHECK_EQ_STR(judge(p, "API.Example.COM.", "93.184.216.34"), "ok");
    CHECK_EQ_STR(judge(p, "localhost", "127.0.0.1"), "ok");
    CHECK_EQ_STR(judge(p, "localhost", "::1"), "ok");
    CHECK_EQ_STR(judge(p, "example.com", "93.184.216.34"),
                 "target address 93.184.216.34 is not allowed (not in the allowlist)");
    CHECK(strcmp(judge(p, "xapi.example.com", "10.0.0.5"), "ok") != 0);
    CHECK(strcmp(judge(p, "api.example.com.evil.net", "10.0.0.5"), "ok") != 0);
    /* wildcards: any depth below, never the apex or a look-alike suffix */
    CHECK_EQ_STR(judge(p, "db.svc.internal", "10.1.1.1"), "ok");
    CHECK_EQ_STR(judge(p, "a.b.svc.internal", "10.1.1.1"), "ok");
    CHECK_EQ_STR(judge(p, "A.SVC.INTERNAL", "10.1.1.1"), "ok");
    CHECK(strcmp(judge(p, "svc.internal", "10.1.1.1"), "ok") != 0);
    CHECK(strcmp(judge(p, "evilsvc.internal", "10.1.1.1"), "ok") != 0);
    CHECK(strcmp(judge(p, "svc.internal.evil", "10.1.1.1"), "ok") != 0);
    /* the address alone decides when the host is unknown */
    CHECK(strcmp(judge(p, NULL, "127.0.0.1"), "ok") != 0);
    CHECK(strcmp(judge(p, "", "127.0.0.1"), "ok") != 0);
    netpolicy_free(p);
}

TEST(bad_allowlists)
{
    static const char *const bad[] = {
        "10.0.0.1/8",
        "10.0.0.0/33",
        "::1/129",
        "10.0.0.0/",
        "10.0.0.0/x8",
        "10.0.0.0/0008",
        "1.2.3/8",
        "host:80",
        "bad host",
        "*",
        "*.",
        "a..b",
        "",
        ".",
        "*.*.x",
        "exa$mple.com",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *const allow[] = {"127.0.0.1/32", bad[i], NULL};
        struct netpolicy *p = (struct netpolicy *)0x1;
        char err[128] = "";
        int rc = netpolicy_new(allow, &p, err, sizeof err);
        if (rc != -SLUICE_E_INVALID_PARAMETER)
            TH_FAIL("entry \"%s\" accepted (rc %d)", bad[i], rc);
        if (!strstr(err, bad[i]))
            TH_FAIL("error for \"%s\" does not name it: %s", bad[i], err);
        CHECK(p == (struct netpolicy *)0x1); /* *out untouched on failure */
    }
    struct netpolicy *p = NULL;
    char err[128];
    const char *const good[] = {"0.0.0.0/0", "::/0", "fe80::/10", "a-b_c.example", "x.", NULL};
    CHECK_EQ_INT(netpolicy_new(good, &p, err, sizeof err), 0);
    CHECK_EQ_STR(judge(p, "x", "1.2.3.4"), "ok");
    netpolicy_free(p);
    netpolicy_free(NULL);
}

int main(void)
{
    RUN(parse_addresses);
    RUN(from_sockaddr);
    RUN(blocked_ipv4);
    RUN(blocked_ipv6);
    RUN(embedded_ipv4);
    RUN(default_policy);
    RUN(allow_by_cidr);
    RUN(allow_by_host);
    RUN(bad_allowlists);
    return test_report();
}
