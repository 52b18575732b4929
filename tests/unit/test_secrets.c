/* test_secrets.c - the secret mask (util/secmask.h) and the secrets rules
 * (engine/secrets.h): every promised rendering is masked, JSON stays JSON, templates
 * name secrets only where allowed, operator secrets reach only the tenants named. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/secrets.h"
#include "testhelp.h"
#include "util/secmask.h"

#define ODD "a b/c+d\"e\\f\xc3\xa9&=?#%"

static int has(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

TEST(mask_raw_percent_json)
{
    struct secmask *m = secmask_new();
    CHECK(secmask_empty(m));
    secmask_add(m, "abc"); /* too short: ignored */
    CHECK(secmask_empty(m));
    secmask_add(m, ODD);
    const char *inputs[] = {
        "x " ODD " y",
        "q=a%20b%2Fc%2Bd%22e%5Cf%C3%A9%26%3D%3F%23%25&",
        "q=a%20b%2fc%2bd%22e%5cf%c3%a9%26%3d%3f%23%25&",
        "q=a+b%2Fc%2Bd%22e%5Cf%C3%A9%26%3D%3F%23%25&",
        "{\"m\":\"a b/c+d\\\"e\\\\f\xc3\xa9&=?#%\"}",
        "{\"m\":\"a b\\/c+d\\\"e\\\\f\\u00e9&=?#%\"}",
        "{\"m\":\"a b\\/c+d\\\"e\\\\f\\u00E9&=?#%\"}",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char *t = secmask_text(m, inputs[i]);
        CHECK(has(t, SECMASK_TEXT));
        CHECK(!has(t, "b/c+d") && !has(t, "2Bd%22") && !has(t, "2bd%22") && !has(t, "c+d\\\""));
        free(t);
    }
    char *t = secmask_text(m, "nothing here");
    CHECK_EQ_STR(t, "nothing here");
    free(t);
    CHECK(secmask_text(m, NULL) == NULL);
    secmask_free(m);
}

TEST(mask_base64_and_basic_auth)
{
    const char *sec = "s3cr3t-" ODD "-tail";
    struct secmask *m = secmask_new();
    secmask_add(m, sec);
    unsigned char out[512];
    char plain[256];
    /* base64 of the value alone (OpenSSL's encoder, not ours) */
    EVP_EncodeBlock(out, (const unsigned char *)sec, (int)strlen(sec));
    char *t = secmask_text(m, (const char *)out);
    CHECK_EQ_STR(t, SECMASK_TEXT);
    free(t);
    /* Basic auth at each alignment: all but the 1-2 characters at each end are masked */
    const char *users[] = {"u", "us", "usr"};
    for (int i = 0; i < 3; i++) {
        snprintf(plain, sizeof plain, "%s:%s", users[i], sec);
        int n = EVP_EncodeBlock(out, (const unsigned char *)plain, (int)strlen(plain));
        char *m2 = secmask_text(m, (const char *)out);
        CHECK(has(m2, SECMASK_TEXT));
        /* what remains: the groups holding "user:" (and up to 2 secret bytes) and the
         * last group (up to 2 secret bytes and the padding) */
        size_t lead = 4 * ((strlen(users[i]) + 1 + 2) / 3);
        CHECK(strlen(m2) <= lead + strlen(SECMASK_TEXT) + 4);
        CHECK(strlen(m2) < (size_t)n);
        free(m2);
    }
    secmask_free(m);
}

TEST(mask_json_keeps_structure)
{
    struct secmask *m = secmask_new();
    secmask_add(m, "\",\"x\":\""); /* a value that looks like JSON punctuation */
    secmask_add(m, "tok-12345");
    const char *doc = "[{\"a\":\"pre tok-12345 post\",\"b\":\"\\\",\\\"x\\\":\\\"\"},"
                      "{\"tok-12345\":1.5}]";
    char *t = secmask_json(m, doc);
    json_error_t je;
    json_t *v = json_loads(t, 0, &je);
    CHECK(v != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(v, 0), "a")), "pre *** post");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(v, 0), "b")), "***");
    CHECK(json_object_get(json_array_get(v, 1), "***") != NULL);
    json_decref(v);
    free(t);
    /* not JSON: masked as text */
    t = secmask_json(m, "oops tok-12345");
    CHECK_EQ_STR(t, "oops ***");
    free(t);
    char buf[16] = "ab tok-12345 cd";
    secmask_inplace(m, buf, sizeof buf);
    CHECK_EQ_STR(buf, "ab *** cd");
    char small[12] = "tok-12345xy";
    secmask_inplace(m, small, 6);
    CHECK_EQ_STR(small, "***xy");
    secmask_free(m);
}

TEST(scan_templates)
{
    json_t *names = json_array();
    CHECK_EQ_INT(secrets_scan("Bearer {{secrets.tok}} {{ secrets.b-2 }} {{data.x}}", names), 2);
    CHECK_EQ_INT((int)json_array_size(names), 2);
    CHECK_EQ_STR(json_string_value(json_array_get(names, 1)), "b-2");
    CHECK_EQ_INT(secrets_scan("{{secretsx}} {{data.secrets}}", NULL), 0);
    CHECK_EQ_INT(secrets_scan("{{secrets}}", NULL), -1);
    CHECK_EQ_INT(secrets_scan("{{secrets.a.b}}", NULL), -1);
    CHECK_EQ_INT(secrets_scan("{{secrets.}}", NULL), -1);
    CHECK_EQ_INT(secrets_scan("plain", NULL), 0);
    json_decref(names);
}

static int check_def(const char *text, char *target)
{
    char err[300];
    json_error_t je;
    json_t *d = json_loads(text, 0, &je);
    target[0] = '\0';
    int rc = secrets_check_definition(d, err, sizeof err, target, 160);
    json_decref(d);
    return rc;
}

TEST(definition_placement)
{
    char t[160];
    CHECK_EQ_INT(check_def("{\"steps\":[{\"type\":\"http\",\"url\":\"http://h/\","
                           "\"headers\":{\"A\":\"B {{secrets.x}}\"}}]}",
                           t),
                 0);
    CHECK_EQ_INT(check_def("{\"steps\":[{\"type\":\"noop\"},{\"type\":\"http\","
                           "\"url\":\"http://h/{{secrets.x}}\"}]}",
                           t),
                 -1);
    CHECK_EQ_STR(t, "steps[1].url");
    CHECK_EQ_INT(check_def("{\"steps\":[{\"type\":\"http\",\"url\":\"http://h/\","
                           "\"body\":{\"a\":[\"{{secrets.x}}\"]}}]}",
                           t),
                 -1);
    CHECK_EQ_STR(t, "steps[0].body.a[0]");
    CHECK_EQ_INT(check_def("{\"steps\":[{\"type\":\"http\",\"url\":\"http://h/\","
                           "\"secretBody\":true,\"body\":{\"a\":[\"{{secrets.x}}\"]}}]}",
                           t),
                 0);
    CHECK_EQ_INT(check_def("{\"steps\":[{\"type\":\"http\",\"url\":\"http://h/\","
                           "\"headers\":{\"A\":\"{{secrets}}\"}}]}",
                           t),
                 -1);
    CHECK_EQ_STR(t, "steps[0].headers.A");
    CHECK_EQ_INT(
        check_def("{\"steps\":[{\"type\":\"map\",\"headers\":{\"A\":\"{{secrets.x}}\"}}]}", t),
        -1); /* "headers" outside an http step is not a header */
    CHECK_EQ_INT(check_def("{\"description\":\"{{secrets.x}}\",\"steps\":[]}", t), -1);
    CHECK_EQ_STR(t, "description");
}

TEST(operator_secrets_reach_named_tenants)
{
    struct secrets *s = secrets_new();
    char *v = NULL;
    CHECK_EQ_INT(secrets_add(s, "API", "v-api-123", "acme, glob*"), 0);
    CHECK_EQ_INT(secrets_add(s, "NONE", "v-none-123", NULL), 0);
    CHECK_EQ_INT(secrets_add(s, "ALL", "v-all-123", "*"), 0);
    CHECK(secrets_add(s, "bad.name", "x", "acme") < 0);
    CHECK(secrets_add(s, "EMPTY", "", "acme") < 0);
    CHECK_EQ_INT((int)secrets_count(s), 3);
    CHECK_EQ_INT(secrets_resolve(s, NULL, "acme", "API", &v), 1);
    CHECK_EQ_STR(v, "v-api-123");
    free(v);
    CHECK_EQ_INT(secrets_resolve(s, NULL, "globex", "API", &v), 1);
    free(v);
    CHECK_EQ_INT(secrets_resolve(s, NULL, "acme2", "API", &v), 0);
    CHECK(v == NULL);
    CHECK_EQ_INT(secrets_resolve(s, NULL, "acm", "API", &v), 0);
    CHECK_EQ_INT(secrets_resolve(s, NULL, "acme", "NONE", &v), 0);
    CHECK_EQ_INT(secrets_resolve(s, NULL, "anyone", "ALL", &v), 1);
    free(v);
    CHECK_EQ_INT(secrets_resolve(s, NULL, "acme", "MISSING", &v), 0);
    secrets_free(s);
}

int main(void)
{
    RUN(mask_raw_percent_json);
    RUN(mask_base64_and_basic_auth);
    RUN(mask_json_keeps_structure);
    RUN(scan_templates);
    RUN(definition_placement);
    RUN(operator_secrets_reach_named_tenants);
    return test_report();
}
