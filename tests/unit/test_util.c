/* test_util.c - buffers, JSON string escaping, URL coding, ids, clock formatting,
 * the error table and workflow name resolution. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "spec/workflow.h"
#include "testhelp.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/cursor.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/url.h"

TEST(buf_grows_and_detaches)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%d,", i);
    CHECK(b.len > 3000);
    CHECK_EQ_INT(b.data[b.len], '\0');
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    size_t n;
    char *s = buf_detach(&b, &n);
    CHECK_EQ_INT(strlen(s), n);
    CHECK(b.data == NULL && b.len == 0);
    free(s);
    CHECK_EQ_STR(buf_cstr(&b), "");
}

TEST(json_string_escapes)
{
    struct buf b = BUF_INIT;
    buf_json_str(&b, "a\"b\\c\n\x01\xc3\xa9", 9);
    CHECK_EQ_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
    buf_reset(&b);
    buf_json_str(&b, "x\0y", 3);
    CHECK_EQ_STR(b.data, "\"x\\u0000y\"");
    buf_release(&b);
}

/* Found by fuzz_wfdef: a message cut by "%.40s" inside a UTF-8 character made the error
 * body invalid JSON (also "no job '%.60s'" for GET /v1/jobs/a%C3%A9%C3%A9...). */
TEST(json_string_replaces_invalid_utf8)
{
    struct buf b = BUF_INIT;
    buf_json_str(&b, "a\xc3", 2);
    CHECK_EQ_STR(b.data, "\"a\\ufffd\"");
    buf_reset(&b);
    buf_json_str(&b, "\xc3\xa9\xe2\x82|\xff\xed\xa0\x80\xc0\xaf\xf0\x9f\x98\x80", 15);
    CHECK_EQ_STR(b.data, "\"\xc3\xa9\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"
                         "\xf0\x9f\x98\x80\"");
    buf_reset(&b);

    json_t *def = json_loads("{\"steps\": [{\"type\": \"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                             "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                             "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                             "\xe2\x82\xac\"}]}",
                             0, NULL);
    struct wfdef *w = NULL;
    char err[300], target[160];
    CHECK(def != NULL);
    CHECK_EQ_INT(wfdef_compile("w", 1, def, &w, err, sizeof err, target, sizeof target),
                 -SLUICE_E_INVALID_FIELD);
    buf_json_str(&b, err, strlen(err));
    json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL);
    CHECK(v != NULL);
    json_decref(v);
    json_decref(def);
    buf_release(&b);
}

TEST(url_decode_and_encode)
{
    char s[] = "a%20b+c%2Fd";
    CHECK_EQ_INT(url_decode(s, 1), 7);
    CHECK_EQ_STR(s, "a b c/d");
    char bad[] = "x%2";
    CHECK_EQ_INT(url_decode(bad, 0), -1);
    char nul[] = "x%00y";
    CHECK_EQ_INT(url_decode(nul, 0), -1);
    struct buf b = BUF_INIT;
    url_encode(&b, "SKU 1/ä");
    CHECK_EQ_STR(b.data, "SKU%201%2F%C3%A4");
    buf_release(&b);
}

TEST(ids_are_random_and_well_formed)
{
    char a[IDS_JOB_LEN + 1], b[IDS_JOB_LEN + 1];
    CHECK_EQ_INT(ids_job_new(a), 0);
    CHECK_EQ_INT(ids_job_new(b), 0);
    CHECK_EQ_INT(strlen(a), IDS_JOB_LEN);
    CHECK(strncmp(a, "job_", 4) == 0);
    CHECK(strcmp(a, b) != 0);
    char h[65];
    ids_sha256_hex("abc", 3, h);
    CHECK_EQ_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(clock_formats_rfc3339)
{
    char ts[25];
    CHECK_EQ_STR(clock_fmt_ms(0, ts), "1970-01-01T00:00:00.000Z");
    CHECK_EQ_STR(clock_fmt_ms(1764455329123LL, ts), "2025-11-29T22:28:49.123Z");
    CHECK_EQ_STR(clock_fmt_ms(951782400007LL, ts), "2000-02-29T00:00:00.007Z"); /* leap day */
    CHECK_EQ_STR(clock_fmt_ms(253402300799999LL, ts), "9999-12-31T23:59:59.999Z");
    CHECK(clock_mono_ns() > 0);
}

TEST(buf_writes_integers_without_printf)
{
    static const long long v[] = {
        0, 7, -7, 10, 1234567890123LL, -9223372036854775807LL - 1, 9223372036854775807LL};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        struct buf b = BUF_INIT;
        char want[32];
        snprintf(want, sizeof want, "%lld", v[i]);
        buf_puts(&b, "x");
        buf_put_i64(&b, v[i]);
        CHECK_EQ_STR(b.data + 1, want);
        buf_release(&b);
    }
}

TEST(error_table_lookups)
{
    CHECK_EQ_INT(sluice_err_status(-SLUICE_E_INVALID_ITEM), 422);
    CHECK_EQ_STR(sluice_err_code(SLUICE_E_INVALID_ITEM), "InvalidItem");
    CHECK_EQ_INT(sluice_err_status(-SLUICE_E_UNSUPPORTED_MEDIA_TYPE), 415);
    CHECK_EQ_STR(sluice_err_code(-9999), "InternalError");
    CHECK_EQ_INT(sluice_err_status(-SLUICE_E_STORE_BUSY), 503);
}

TEST(cursors_are_sealed_per_tag)
{
    unsigned char k[CURSOR_KEY_BYTES], k2[CURSOR_KEY_BYTES];
    char hex[2 * CURSOR_KEY_BYTES + 1], c[CURSOR_TEXT_MAX], c2[CURSOR_TEXT_MAX];
    CHECK_EQ_INT(cursor_key_new_hex(hex), 0);
    CHECK_EQ_INT(cursor_key_parse(hex, k), 0);
    CHECK_EQ_INT(cursor_key_parse("00112233445566778899aabbccddeeff", k2), 0);
    CHECK_EQ_INT(cursor_key_parse("00112233445566778899aabbccddeeZZ", k2), -1);
    CHECK_EQ_INT(cursor_key_parse("0011", k2), -1);
    int64_t pos = -1;
    const int64_t cases[] = {0, 1, 17, 4096, INT64_MAX};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cursor_seal(k, "acme", cases[i], c);
        CHECK_EQ_INT((int)strlen(c), CURSOR_TEXT_MAX - 1);
        CHECK_EQ_INT(cursor_open(k, "acme", c, &pos), 0);
        CHECK(pos == cases[i]);
        CHECK_EQ_INT(cursor_open(k, "globex", c, &pos), -1); /* another tenant's */
        CHECK_EQ_INT(cursor_open(k2, "acme", c, &pos), -1);  /* another key */
    }
    /* neighbours look unrelated, and no digit flip opens */
    cursor_seal(k, "acme", 1, c);
    cursor_seal(k, "acme", 2, c2);
    CHECK(strncmp(c, c2, 4) != 0);
    for (int i = 0; i < CURSOR_TEXT_MAX - 1; i++) {
        char e[CURSOR_TEXT_MAX];
        memcpy(e, c, sizeof e);
        e[i] = e[i] == 'A' ? 'B' : 'A';
        CHECK_EQ_INT(cursor_open(k, "acme", e, &pos), -1);
    }
    CHECK_EQ_INT(cursor_open(k, "acme", "", &pos), -1);
    CHECK_EQ_INT(cursor_open(k, "acme", "12", &pos), -1);
    CHECK_EQ_INT(cursor_open(k, "acme", "!!!!!!!!!!!!!!!!!!!!!!", &pos), -1);
}

TEST(workflow_names_resolve)
{
    struct wfdef *w = NULL;
    CHECK_EQ_INT(wfdef_builtin("noop", &w), 0);
    CHECK_EQ_INT(w->nsteps, 1);
    CHECK_EQ_INT(w->steps[0].type, STEP_NOOP);
    wfdef_free(w);
    CHECK_EQ_INT(wfdef_builtin("products.upsert", &w), 0);
    CHECK_EQ_INT(w->steps[0].type, STEP_UPSERT);
    CHECK_EQ_STR(w->steps[0].collection, "products");
    CHECK(w->builtin);
    wfdef_free(w);
    CHECK_EQ_INT(wfdef_builtin("a-b_c.patch", &w), 0);
    CHECK_EQ_INT(w->steps[0].type, STEP_PATCH);
    wfdef_free(w);
    CHECK_EQ_INT(wfdef_builtin("x.delete", &w), 0);
    CHECK_EQ_INT(w->steps[0].type, STEP_DELETE);
    wfdef_free(w);
    CHECK_EQ_INT(wfdef_builtin("products.frobnicate", &w), -SLUICE_E_UNKNOWN_WORKFLOW);
    CHECK_EQ_INT(wfdef_builtin(".upsert", &w), -SLUICE_E_UNKNOWN_WORKFLOW);
    CHECK_EQ_INT(wfdef_builtin("pro ducts.upsert", &w), -SLUICE_E_UNKNOWN_WORKFLOW);
    CHECK_EQ_INT(wfdef_builtin("upsert", &w), -SLUICE_E_UNKNOWN_WORKFLOW);
    CHECK_EQ_INT(wfdef_builtin("", &w), -SLUICE_E_UNKNOWN_WORKFLOW);
    CHECK(wfdef_name_valid("orders.sync"));
    CHECK(wfdef_name_valid("push-products"));
    CHECK(!wfdef_name_valid("noop"));
    CHECK(!wfdef_name_valid("products.upsert"));
    CHECK(!wfdef_name_valid("a b"));
    CHECK(!wfdef_name_valid(""));
}

TEST(base64_decodes_canonical_only)
{
    unsigned char out[16];
    size_t n = 99;
    CHECK_EQ_INT(base64_decode("", 0, out, sizeof out, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(base64_decode("Zm9vYmFy", 8, out, sizeof out, &n), 0);
    CHECK(n == 6 && memcmp(out, "foobar", 6) == 0);
    CHECK_EQ_INT(base64_decode("Zm9vYg==", 8, out, sizeof out, &n), 0);
    CHECK(n == 4 && memcmp(out, "foob", 4) == 0);
    CHECK_EQ_INT(base64_decode("Zm9vYmE=", 8, out, sizeof out, &n), 0);
    CHECK(n == 5 && memcmp(out, "fooba", 5) == 0);
    CHECK_EQ_INT(base64_decode("+/+/", 4, out, sizeof out, &n), 0);
    CHECK(n == 3 && out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
    /* Not canonical: no padding, padding inside, URL alphabet, whitespace, non-zero
     * padding bits, '=' alone; and a result larger than the room. */
    const char *bad[] = {"Zm9vYg", "Zg=v", "-_-_", "Zm9v Zg==", "Zh==", "Zm9=", "====", "A==="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (base64_decode(bad[i], strlen(bad[i]), out, sizeof out, &n) != -1)
            TH_FAIL("bad[%zu] \"%s\" decoded", i, bad[i]);
    CHECK_EQ_INT(base64_decode("Zm9vYmFy", 8, out, 5, &n), -1);
}

int main(void)
{
    RUN(buf_grows_and_detaches);
    RUN(json_string_escapes);
    RUN(json_string_replaces_invalid_utf8);
    RUN(url_decode_and_encode);
    RUN(ids_are_random_and_well_formed);
    RUN(clock_formats_rfc3339);
    RUN(buf_writes_integers_without_printf);
    RUN(error_table_lookups);
    RUN(cursors_are_sealed_per_tag);
    RUN(workflow_names_resolve);
    RUN(base64_decodes_canonical_only);
    return test_report();
}
