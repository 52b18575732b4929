/* test_config.c - serve's flags and SLUICE_* variables: defaults, precedence, errors. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testhelp.h"

TEST(defaults)
{
    struct config c;
    char err[4096];
    char *argv[] = {"serve", NULL};
    unsetenv("SLUICE_WORKERS");
    CHECK_EQ_INT(config_load(&c, 1, argv, err, sizeof err), 0);
    CHECK_EQ_STR(c.host, "127.0.0.1");
    CHECK_EQ_INT(c.port, 8080);
    CHECK_EQ_STR(c.store_url, "sqlite:./data/sluice.db");
    CHECK_EQ_INT(c.engine.workers, 2);
    CHECK_EQ_INT(c.api.limits.max_items, 1000000);
    CHECK_EQ_INT(c.api.limits.max_item_bytes, 1 << 20);
    CHECK_EQ_INT(c.api.limits.max_depth, 64);
    CHECK_EQ_INT(c.store.synchronous_full, 1);
    CHECK_EQ_STR(c.outbound_allow, "");
    CHECK_EQ_INT(c.outbound_max_body, 1 << 20);
    CHECK_EQ_INT(c.retention_seconds, 30 * 24 * 3600);
    CHECK_EQ_INT(c.tenant_rate, 200);
    CHECK_EQ_INT(c.tenant_burst, 400);
    CHECK_EQ_INT(c.auth_fail_rate, 20);
}

TEST(later_settings_parse)
{
    struct config c;
    char err[4096];
    char *argv[] = {"serve",
                    "--outbound-allow",
                    "127.0.0.1/32,api.example.com",
                    "--retention-seconds",
                    "60",
                    "--tenant-rate",
                    "0",
                    "--auth-fail-rate=3",
                    NULL};
    CHECK_EQ_INT(config_load(&c, 8, argv, err, sizeof err), 0);
    CHECK_EQ_STR(c.outbound_allow, "127.0.0.1/32,api.example.com");
    CHECK_EQ_INT(c.retention_seconds, 60);
    CHECK_EQ_INT(c.tenant_rate, 0);
    CHECK_EQ_INT(c.auth_fail_rate, 3);
    char *bad[] = {"serve", "--retention-seconds", "0", NULL};
    CHECK_EQ_INT(config_load(&c, 3, bad, err, sizeof err), -1);
    CHECK(strstr(err, "--retention-seconds") != NULL);
}

TEST(flags_override_environment)
{
    struct config c;
    char err[4096];
    setenv("SLUICE_WORKERS", "3", 1);
    setenv("SLUICE_LISTEN", "127.0.0.1:9000", 1);
    char *argv[] = {"serve",       "--workers", "5",      "--store=sqlite:/tmp/x.db",
                    "--max-items", "10",        "--sync", "normal",
                    "--lease-ms",  "2000",      NULL};
    CHECK_EQ_INT(config_load(&c, 10, argv, err, sizeof err), 0);
    CHECK_EQ_INT(c.engine.workers, 5);
    CHECK_EQ_INT(c.port, 9000);
    CHECK_EQ_STR(c.store_url, "sqlite:/tmp/x.db");
    CHECK_EQ_INT(c.api.limits.max_items, 10);
    CHECK_EQ_INT(c.store.synchronous_full, 0);
    CHECK_EQ_INT(c.engine.lease_ms, 2000);
    unsetenv("SLUICE_WORKERS");
    unsetenv("SLUICE_LISTEN");
}

TEST(bad_values_are_errors)
{
    struct config c;
    char err[4096];
    char *a1[] = {"serve", "--workers", "0", NULL};
    CHECK_EQ_INT(config_load(&c, 3, a1, err, sizeof err), -1);
    CHECK(strstr(err, "--workers") != NULL);
    char *a2[] = {"serve", "--listen", "nohost", NULL};
    CHECK_EQ_INT(config_load(&c, 3, a2, err, sizeof err), -1);
    char *a3[] = {"serve", "--bogus", NULL};
    CHECK_EQ_INT(config_load(&c, 2, a3, err, sizeof err), -1);
    CHECK(strstr(err, "unknown option") != NULL);
    char *a4[] = {"serve", "--workers", NULL};
    CHECK_EQ_INT(config_load(&c, 2, a4, err, sizeof err), -1);
    char *a5[] = {"serve", "--help", NULL};
    CHECK_EQ_INT(config_load(&c, 2, a5, err, sizeof err), 1);
    CHECK(strstr(err, "SLUICE_STORE") != NULL);
    setenv("SLUICE_MAX_DEPTH", "-4", 1);
    char *a6[] = {"serve", NULL};
    CHECK_EQ_INT(config_load(&c, 1, a6, err, sizeof err), -1);
    unsetenv("SLUICE_MAX_DEPTH");
}

int main(void)
{
    RUN(defaults);
    RUN(flags_override_environment);
    RUN(bad_values_are_errors);
    RUN(later_settings_parse);
    return test_report();
}
