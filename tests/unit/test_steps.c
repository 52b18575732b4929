/* test_steps.c - the pure building blocks of workflow steps (src/steps): dotted paths,
 * "{{ }}" templates, the JSON Schema subset of `validate` and the `map` step. Basic
 * cases first, then errors and edge cases. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lang/map.h"
#include "lang/path.h"
#include "lang/schema.h"
#include "lang/template.h"
#include "testhelp.h"
#include "util/buf.h"
#include "util/errors.h"
#include "util/jsonw.h"
#include "util/utf8.h"

/* Parses a JSON literal for a test; aborts on a typo in the test itself. */
static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) {
        fprintf(stderr, "bad test JSON: %s: %s\n", text, e.text);
        abort();
    }
    return v;
}

/* Compact dump for comparisons; static storage, valid until the next call. */
static const char *D(json_t *v)
{
    static char out[4096];
    char *s =
        v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15))
          : NULL;
    snprintf(out, sizeof out, "%s", s ? s : "(null)");
    free(s);
    return out;
}

static json_t *ctx_fixture(void)
{
    return J("{\"data\": {\"title\": \"Lamp\", \"price\": 19.99, \"qty\": 3, \"ok\": true,"
             " \"none\": null, \"attributes\": {\"color\": \"red & blue/green\"},"
             " \"tags\": [\"a\", \"b\"], \"items\": [{\"sku\": \"X1\"}, {\"sku\": \"X2\"}],"
             " \"0\": \"zero-key\", \"Product Name\": \"spaced\"},"
             " \"ref\": \"r-1\", \"index\": 7, \"job\": {\"id\": \"j1\"},"
             " \"steps\": {\"push\": {\"response\": {\"status\": 201}}}}");
}

/* ---- paths ---------------------------------------------------------------------- */

TEST(path_check_accepts_and_rejects)
{
    char err[128];
    CHECK_EQ_INT(path_check("data.attributes.color", err, sizeof err), 0);
    CHECK_EQ_INT(path_check("items.0.sku", err, sizeof err), 0);
    CHECK_EQ_INT(path_check("data.Product Name", err, sizeof err), 0);
    CHECK_EQ_INT(path_check("data.caf\xc3\xa9", err, sizeof err), 0);

    CHECK_EQ_INT(path_check("", err, sizeof err), -1);
    CHECK_EQ_STR(err, "path is empty");
    CHECK_EQ_INT(path_check(NULL, err, sizeof err), -1);
    CHECK_EQ_INT(path_check("a..b", err, sizeof err), -1);
    CHECK_EQ_STR(err, "path has an empty segment at offset 2");
    CHECK_EQ_INT(path_check(".a", err, sizeof err), -1);
    CHECK_EQ_STR(err, "path has an empty segment at offset 0");
    CHECK_EQ_INT(path_check("a.", err, sizeof err), -1);
    CHECK_EQ_STR(err, "path has an empty segment at offset 2");
    CHECK_EQ_INT(path_check("a\tb", err, sizeof err), -1);
    CHECK_EQ_STR(err, "path has a control character at offset 1");
    CHECK_EQ_INT(path_check("a}b", err, sizeof err), -1);
    CHECK_EQ_STR(err, "path has '}' at offset 1");
    CHECK_EQ_INT(path_check("a\xc3", err, sizeof err), -1);
    CHECK_EQ_STR(err, "path is not valid UTF-8");
    /* NULL err buffer is fine */
    CHECK_EQ_INT(path_check("a..b", NULL, 0), -1);
}

TEST(path_check_limits)
{
    char err[128], p[600];
    /* 32 segments OK, 33 not */
    strcpy(p, "a");
    for (int i = 1; i < 32; i++)
        strcat(p, ".a");
    CHECK_EQ_INT(path_check(p, err, sizeof err), 0);
    strcat(p, ".a");
    CHECK_EQ_INT(path_check(p, err, sizeof err), -1);
    CHECK_EQ_STR(err, "path has more than 32 segments");
    /* 256 bytes OK, 257 not */
    memset(p, 'x', 256);
    p[256] = '\0';
    CHECK_EQ_INT(path_check(p, err, sizeof err), 0);
    p[256] = 'x';
    p[257] = '\0';
    CHECK_EQ_INT(path_check(p, err, sizeof err), -1);
    CHECK_EQ_STR(err, "path is longer than 256 bytes");
    /* checkn: embedded NUL */
    CHECK_EQ_INT(path_checkn("a\0b", 3, err, sizeof err), -1);
}

TEST(path_get_objects_and_arrays)
{
    json_t *ctx = ctx_fixture();
    CHECK_EQ_STR(json_string_value(path_get(ctx, "data.attributes.color")), "red & blue/green");
    CHECK_EQ_INT(json_integer_value(path_get(ctx, "steps.push.response.status")), 201);
    CHECK_EQ_STR(json_string_value(path_get(ctx, "data.items.1.sku")), "X2");
    CHECK_EQ_STR(json_string_value(path_get(ctx, "data.tags.0")), "a");
    /* all-digit segment on an object is a key */
    CHECK_EQ_STR(json_string_value(path_get(ctx, "data.0")), "zero-key");
    CHECK_EQ_STR(json_string_value(path_get(ctx, "data.Product Name")), "spaced");
    CHECK(json_is_null(path_get(ctx, "data.none")));
    /* absent */
    CHECK(path_get(ctx, "data.items.2.sku") == NULL);
    CHECK(path_get(ctx, "data.items.01") == NULL); /* not a canonical index */
    CHECK(path_get(ctx, "data.items.x") == NULL);
    CHECK(path_get(ctx, "data.items.-1") == NULL);
    CHECK(path_get(ctx, "data.items.99999999999") == NULL);
    CHECK(path_get(ctx, "data.title.x") == NULL); /* through a string */
    CHECK(path_get(ctx, "nope") == NULL);
    CHECK(path_get(ctx, "data..x") == NULL); /* invalid */
    CHECK(path_get(NULL, "a") == NULL);
    CHECK(path_getn(ctx, "data.titleXYZ", 10) == path_get(ctx, "data.title"));
    json_decref(ctx);
}

TEST(path_set_creates_and_replaces)
{
    char err[128];
    json_t *root = J("{\"a\": {\"x\": 1}, \"list\": [1, {\"k\": 2}]}");
    CHECK_EQ_INT(path_set(root, "a.y", json_integer(2), err, sizeof err), 0);
    CHECK_EQ_INT(path_set(root, "b.c.d", json_string("deep"), err, sizeof err), 0);
    CHECK_EQ_INT(path_set(root, "a.x", json_true(), err, sizeof err), 0);
    CHECK_EQ_INT(path_set(root, "list.0", json_integer(10), err, sizeof err), 0);
    CHECK_EQ_INT(path_set(root, "list.1.k", json_integer(20), err, sizeof err), 0);
    CHECK_EQ_INT(path_set(root, "list.2", json_string("appended"), err, sizeof err), 0);
    CHECK_EQ_STR(D(root), "{\"a\":{\"x\":true,\"y\":2},\"b\":{\"c\":{\"d\":\"deep\"}},"
                          "\"list\":[10,{\"k\":20},\"appended\"]}");
    /* an array root */
    json_t *arr = J("[]");
    CHECK_EQ_INT(path_set(arr, "0.name", json_string("n"), err, sizeof err), 0);
    CHECK_EQ_STR(D(arr), "[{\"name\":\"n\"}]");
    json_decref(arr);
    json_decref(root);
}

TEST(path_set_errors_leave_root_unchanged)
{
    char err[128];
    json_t *root = J("{\"a\": {\"s\": \"str\"}, \"list\": [1, 2]}");
    const char *before = "{\"a\":{\"s\":\"str\"},\"list\":[1,2]}";

    CHECK_EQ_INT(path_set(root, "a.s.x", json_integer(1), err, sizeof err), -1);
    CHECK_EQ_STR(err, "cannot set a.s.x: a.s is a string");
    CHECK_EQ_INT(path_set(root, "list.5", json_integer(1), err, sizeof err), -1);
    CHECK_EQ_STR(err, "cannot set list.5: index 5 is out of range (size 2)");
    CHECK_EQ_INT(path_set(root, "list.name", json_integer(1), err, sizeof err), -1);
    CHECK_EQ_STR(err, "cannot set list.name: list is an array and 'name' is not an index");
    CHECK_EQ_INT(path_set(root, "list.0.x", json_integer(1), err, sizeof err), -1);
    CHECK_EQ_STR(err, "cannot set list.0.x: list.0 is a number");
    CHECK_EQ_INT(path_set(root, "list.7.x.y", json_integer(1), err, sizeof err), -1);
    CHECK_EQ_STR(err, "cannot set list.7.x.y: index 7 is out of range (size 2)");
    CHECK_EQ_INT(path_set(root, "a..b", json_integer(1), err, sizeof err), -1);
    CHECK_EQ_STR(err, "path has an empty segment at offset 2");
    CHECK_EQ_INT(path_set(root, "a.b", NULL, err, sizeof err), -1);
    CHECK_EQ_STR(D(root), before);

    json_t *scalar = json_integer(3);
    CHECK_EQ_INT(path_set(scalar, "a", json_integer(1), err, sizeof err), -1);
    CHECK_EQ_STR(err, "cannot set a: the root is not an object or array");
    json_decref(scalar);
    json_t *arr = J("[]");
    CHECK_EQ_INT(path_set(arr, "x", json_integer(1), err, sizeof err), -1);
    CHECK_EQ_STR(err, "cannot set x: the root is an array and 'x' is not an index");
    json_decref(arr);
    json_decref(root);
}

TEST(path_remove_cases)
{
    json_t *root = J("{\"a\": {\"b\": 1, \"c\": 2}, \"list\": [1, 2, 3], \"s\": \"x\"}");
    CHECK_EQ_INT(path_remove(root, "a.b"), 1);
    CHECK_EQ_INT(path_remove(root, "a.b"), 0);
    CHECK_EQ_INT(path_remove(root, "list.0"), 1);
    CHECK_EQ_INT(path_remove(root, "list.5"), 0);
    CHECK_EQ_INT(path_remove(root, "s.x"), 0);
    CHECK_EQ_INT(path_remove(root, "zz.y.z"), 0);
    CHECK_EQ_INT(path_remove(root, "a..b"), -1);
    CHECK_EQ_STR(D(root), "{\"a\":{\"c\":2},\"list\":[2,3],\"s\":\"x\"}");
    json_decref(root);
}

/* ---- templates ------------------------------------------------------------------ */

static const char *render(json_t *ctx, const char *tpl, int url, char *err, size_t errlen)
{
    static struct buf b = BUF_INIT;
    static char out[1024];
    buf_reset(&b);
    if (template_render(tpl, ctx, url, &b, err, errlen) < 0) {
        buf_release(&b);
        return NULL;
    }
    snprintf(out, sizeof out, "%s", buf_cstr(&b));
    buf_release(&b);
    return out;
}

TEST(template_renders_values)
{
    char err[128];
    json_t *ctx = ctx_fixture();
    CHECK_EQ_STR(render(ctx, "{{data.title}} ({{ data.attributes.color }})", 0, err, sizeof err),
                 "Lamp (red & blue/green)");
    CHECK_EQ_STR(render(ctx, "no placeholders", 0, err, sizeof err), "no placeholders");
    CHECK_EQ_STR(render(ctx, "", 0, err, sizeof err), "");
    CHECK_EQ_STR(render(ctx, "p={{data.price}} q={{data.qty}} ok={{data.ok}} n={{data.none}}", 0,
                        err, sizeof err),
                 "p=19.99 q=3 ok=true n=null");
    CHECK_EQ_STR(render(ctx, "{{data.tags}}|{{data.items.0}}", 0, err, sizeof err),
                 "[\"a\",\"b\"]|{\"sku\":\"X1\"}");
    CHECK_EQ_STR(render(ctx, "{{\n\tref \r\n}}-{{index}}-{{steps.push.response.status}}", 0, err,
                        sizeof err),
                 "r-1-7-201");
    CHECK_EQ_STR(render(ctx, "{ single } braces {{ref}}}", 0, err, sizeof err),
                 "{ single } braces r-1}");
    json_decref(ctx);
}

TEST(template_renders_reals_shortest)
{
    char err[128];
    json_t *ctx = J("{\"a\": 0.1, \"b\": 5.0, \"c\": 1e300, \"d\": -0.5, \"e\": 123456789012}");
    CHECK_EQ_STR(render(ctx, "{{a}} {{b}} {{c}} {{d}} {{e}}", 0, err, sizeof err),
                 "0.1 5.0 1e+300 -0.5 123456789012");
    json_decref(ctx);
}

TEST(template_url_encoding)
{
    char err[128];
    json_t *ctx = ctx_fixture();
    CHECK_EQ_STR(render(ctx, "https://x.test/p/{{data.attributes.color}}?t={{data.title}}", 1, err,
                        sizeof err),
                 "https://x.test/p/red%20%26%20blue%2Fgreen?t=Lamp");
    json_t *u = J("{\"s\": \"caf\\u00e9 ~-._\", \"o\": {\"k\": 1}}");
    CHECK_EQ_STR(render(u, "/{{s}}/{{o}}", 1, err, sizeof err),
                 "/caf%C3%A9%20~-._/%7B%22k%22%3A1%7D");
    /* without url_encode the same value is inserted as is */
    CHECK_EQ_STR(render(u, "/{{s}}", 0, err, sizeof err), "/caf\xc3\xa9 ~-._");
    json_decref(u);
    json_decref(ctx);
}

TEST(template_missing_path_is_error)
{
    char err[128];
    json_t *ctx = ctx_fixture();
    struct buf b = BUF_INIT;
    buf_puts(&b, "keep:");
    CHECK_EQ_INT(template_render("x {{data.ok}} {{ data.nope }} y", ctx, 0, &b, err, sizeof err),
                 -1);
    CHECK_EQ_STR(err, "data.nope is missing");
    CHECK_EQ_STR(buf_cstr(&b), "keep:"); /* nothing partial appended */
    CHECK_EQ_INT(b.len, 5);
    CHECK_EQ_INT(template_render("{{data.items.5.sku}}", ctx, 0, &b, err, sizeof err), -1);
    CHECK_EQ_STR(err, "data.items.5.sku is missing");
    buf_release(&b);
    json_decref(ctx);
}

TEST(template_syntax_errors)
{
    char err[160];
    CHECK_EQ_INT(template_check("plain", err, sizeof err), 0);
    CHECK_EQ_INT(template_check("{{a}}{{ b.c }} and {x}", err, sizeof err), 0);
    CHECK_EQ_INT(template_check("hello {{data.x", err, sizeof err), -1);
    CHECK_EQ_STR(err, "unclosed '{{' at offset 6");
    CHECK_EQ_INT(template_check("hello {{data.x}", err, sizeof err), -1);
    CHECK_EQ_STR(err, "unclosed '{{' at offset 6");
    CHECK_EQ_INT(template_check("a }} b", err, sizeof err), -1);
    CHECK_EQ_STR(err, "'}}' without '{{' at offset 2");
    CHECK_EQ_INT(template_check("{{a {{b}} }}", err, sizeof err), -1);
    CHECK_EQ_STR(err, "'{{' inside the placeholder opened at offset 0");
    CHECK_EQ_INT(template_check("x{{ }}", err, sizeof err), -1);
    CHECK_EQ_STR(err, "bad placeholder at offset 1: path is empty");
    CHECK_EQ_INT(template_check("{{a..b}}", err, sizeof err), -1);
    CHECK_EQ_STR(err, "bad placeholder at offset 0: path has an empty segment at offset 2");
    CHECK_EQ_INT(template_check("{{{a}}}", err, sizeof err), -1);
    CHECK_EQ_STR(err, "bad placeholder at offset 0: path has '{' at offset 0");
    CHECK_EQ_INT(template_check("{{a}}}}", err, sizeof err), -1);
    CHECK_EQ_STR(err, "'}}' without '{{' at offset 5");
    /* render reports syntax errors too, even without a context */
    struct buf b = BUF_INIT;
    CHECK_EQ_INT(template_render("{{x", NULL, 0, &b, err, sizeof err), -1);
    CHECK_EQ_STR(err, "unclosed '{{' at offset 0");
    buf_release(&b);
}

TEST(template_eval_typed_and_nested)
{
    char err[160];
    json_t *ctx = ctx_fixture();
    json_t *one = json_string("{{data.price}}");
    json_t *v = template_eval(one, ctx, err, sizeof err);
    CHECK(json_is_real(v) && json_real_value(v) == 19.99);
    json_decref(v);
    json_decref(one);

    json_t *tpl = J("{\"price\": \"{{data.price}}\", \"qty\": \"{{ data.qty }}\","
                    " \"ok\": \"{{data.ok}}\", \"none\": \"{{data.none}}\","
                    " \"tags\": \"{{data.tags}}\", \"label\": \"{{data.title}} x{{data.qty}}\","
                    " \"spaced\": \" {{data.qty}}\", \"lit\": 5, \"t\": true, \"n\": null,"
                    " \"nested\": {\"arr\": [\"{{ref}}\", 1, \"{{data.items.1}}\"]}}");
    v = template_eval(tpl, ctx, err, sizeof err);
    CHECK(v != NULL);
    CHECK_EQ_STR(D(v), "{\"label\":\"Lamp x3\",\"lit\":5,\"n\":null,"
                       "\"nested\":{\"arr\":[\"r-1\",1,{\"sku\":\"X2\"}]},\"none\":null,"
                       "\"ok\":true,\"price\":19.99,\"qty\":3,\"spaced\":\" 3\","
                       "\"t\":true,\"tags\":[\"a\",\"b\"]}");
    CHECK(json_is_real(json_object_get(v, "price")));
    CHECK(json_is_integer(json_object_get(v, "qty")));
    /* a deep copy: changing the result leaves ctx alone */
    json_array_clear(json_object_get(v, "tags"));
    CHECK_EQ_INT(json_array_size(path_get(ctx, "data.tags")), 2);
    json_decref(v);
    /* tpl is not modified and its refcount untouched */
    CHECK_EQ_INT(tpl->refcount, 1);
    json_decref(tpl);
    json_decref(ctx);
}

TEST(template_eval_errors_with_location)
{
    char err[160];
    json_t *ctx = ctx_fixture();
    json_t *tpl = J("\"{{data.title}}\"");
    json_t *v = template_eval(tpl, ctx, err, sizeof err);
    CHECK(v != NULL && strcmp(json_string_value(v), "Lamp") == 0);
    json_decref(v);
    json_decref(tpl);

    tpl = J("\"{{data.nope}}\"");
    CHECK(template_eval(tpl, ctx, err, sizeof err) == NULL);
    CHECK_EQ_STR(err, "data.nope is missing");
    json_decref(tpl);

    tpl = J("{\"a\": {\"b\": [1, \"x{{data.gone}}\"]}}");
    CHECK(template_eval(tpl, ctx, err, sizeof err) == NULL);
    CHECK_EQ_STR(err, "a.b[1]: data.gone is missing");
    json_decref(tpl);

    tpl = J("[\"ok\", {\"k\": \"{{bad..path}}\"}]");
    CHECK(template_eval(tpl, ctx, err, sizeof err) == NULL);
    CHECK_EQ_STR(err, "[1].k: bad placeholder at offset 0: path has an empty segment at offset 4");
    char where[64];
    CHECK_EQ_INT(template_check_value(tpl, err, sizeof err, where, sizeof where), -1);
    CHECK_EQ_STR(where, "[1].k");
    CHECK_EQ_STR(err, "bad placeholder at offset 0: path has an empty segment at offset 4");
    json_decref(tpl);

    tpl = J("{\"ok\": [\"{{a}}\", 2, {\"x\": \"y\"}]}");
    CHECK_EQ_INT(template_check_value(tpl, err, sizeof err, where, sizeof where), 0);
    json_decref(tpl);
    json_decref(ctx);
}

TEST(template_embedded_nul_string)
{
    char err[64];
    json_t *ctx = json_pack("{s:s#}", "s", "a\0b", (size_t)3);
    json_t *tpl = json_string("[{{s}}]");
    json_t *v = template_eval(tpl, ctx, err, sizeof err);
    CHECK(v != NULL);
    CHECK_EQ_INT(json_string_length(v), 5);
    CHECK(memcmp(json_string_value(v), "[a\0b]", 5) == 0);
    json_decref(v);
    json_decref(tpl);
    json_decref(ctx);
}

/* ---- schema --------------------------------------------------------------------- */

/* Validates instance text against schema text; returns the violations compactly as
 * "pointer|keyword|message;..." (static storage). */
static const char *violations(const char *schema_text, const char *inst_text, int *count)
{
    static char out[4096];
    char err[160], where[160];
    json_t *js = J(schema_text), *inst = J(inst_text), *arr = json_array();
    struct schema *s = NULL;
    out[0] = '\0';
    if (schema_compile(js, &s, err, sizeof err, where, sizeof where) < 0) {
        snprintf(out, sizeof out, "COMPILE ERROR at %s: %s", where, err);
        *count = -1;
    } else {
        *count = schema_validate(s, inst, arr);
        size_t i;
        json_t *v;
        size_t len = 0;
        json_array_foreach(arr, i, v)
        {
            len += (size_t)snprintf(out + len, sizeof out - len, "%s%s|%s|%s", i ? ";" : "",
                                    json_string_value(json_object_get(v, "pointer")),
                                    json_string_value(json_object_get(v, "keyword")),
                                    json_string_value(json_object_get(v, "message")));
            if (len >= sizeof out)
                break;
        }
        if ((size_t)*count != json_array_size(arr))
            snprintf(out, sizeof out, "COUNT MISMATCH");
    }
    schema_free(s);
    json_decref(js);
    json_decref(inst);
    json_decref(arr);
    return out;
}

TEST(schema_type_keyword)
{
    int n;
    CHECK_EQ_STR(violations("{\"type\": \"string\"}", "\"x\"", &n), "");
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_STR(violations("{\"type\": \"string\"}", "5", &n),
                 "|type|must be of type string (got integer)");
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(violations("{\"type\": \"number\"}", "5", &n), "");
    CHECK_EQ_STR(violations("{\"type\": \"number\"}", "5.5", &n), "");
    CHECK_EQ_STR(violations("{\"type\": \"integer\"}", "5.0", &n), "");
    CHECK_EQ_STR(violations("{\"type\": \"integer\"}", "5.5", &n),
                 "|type|must be of type integer (got number)");
    CHECK_EQ_STR(violations("{\"type\": \"boolean\"}", "false", &n), "");
    CHECK_EQ_STR(violations("{\"type\": \"null\"}", "null", &n), "");
    CHECK_EQ_STR(violations("{\"type\": \"object\"}", "[]", &n),
                 "|type|must be of type object (got array)");
    CHECK_EQ_STR(violations("{\"type\": \"array\"}", "{}", &n),
                 "|type|must be of type array (got object)");
    CHECK_EQ_STR(violations("{\"type\": [\"string\", \"null\"]}", "null", &n), "");
    CHECK_EQ_STR(violations("{\"type\": [\"string\", \"null\", \"array\"]}", "true", &n),
                 "|type|must be of type string, array or null (got boolean)");
    CHECK_EQ_STR(violations("{}", "{\"any\": 1}", &n), "");
}

TEST(schema_value_keywords)
{
    int n;
    CHECK_EQ_STR(violations("{\"enum\": [\"a\", 1, {\"k\": [2]}]}", "\"a\"", &n), "");
    CHECK_EQ_STR(violations("{\"enum\": [\"a\", 1, {\"k\": [2]}]}", "1.0", &n), "");
    CHECK_EQ_STR(violations("{\"enum\": [\"a\", 1, {\"k\": [2]}]}", "{\"k\": [2.0]}", &n), "");
    CHECK_EQ_STR(violations("{\"enum\": [\"a\", 1]}", "\"b\"", &n),
                 "|enum|must be one of [\"a\",1]");
    CHECK_EQ_STR(violations("{\"minimum\": 0}", "0", &n), "");
    CHECK_EQ_STR(violations("{\"minimum\": 0}", "-1", &n), "|minimum|must be >= 0");
    CHECK_EQ_STR(violations("{\"minimum\": 0.5}", "0.25", &n), "|minimum|must be >= 0.5");
    CHECK_EQ_STR(violations("{\"maximum\": 10}", "10.0", &n), "");
    CHECK_EQ_STR(violations("{\"maximum\": 10}", "10.5", &n), "|maximum|must be <= 10");
    /* exact integer comparison beyond double precision */
    CHECK_EQ_STR(violations("{\"maximum\": 9007199254740992}", "9007199254740993", &n),
                 "|maximum|must be <= 9007199254740992");
    /* type-specific keywords ignore other types */
    CHECK_EQ_STR(
        violations("{\"minimum\": 0, \"minLength\": 3, \"required\": [\"x\"]}", "\"abcd\"", &n),
        "");
    CHECK_EQ_STR(violations("{\"minLength\": 2, \"maxLength\": 3}", "\"ab\"", &n), "");
    CHECK_EQ_STR(violations("{\"minLength\": 2}", "\"a\"", &n),
                 "|minLength|must be at least 2 characters long");
    CHECK_EQ_STR(violations("{\"maxLength\": 3}", "\"abcd\"", &n),
                 "|maxLength|must be at most 3 characters long");
}

/* Found by fuzz_schema: an integer was compared with a real bound (or enum value) as a
 * double, so 9007199254740993 equalled 9007199254740992.0 and passed "maximum". */
TEST(schema_numbers_compare_exactly)
{
    int n;
    CHECK_EQ_STR(violations("{\"maximum\": 9007199254740992.0}", "9007199254740993", &n),
                 "|maximum|must be <= 9007199254740992.0");
    CHECK_EQ_STR(violations("{\"minimum\": 9007199254740992.0}", "9007199254740991", &n),
                 "|minimum|must be >= 9007199254740992.0");
    CHECK_EQ_STR(violations("{\"maximum\": 9007199254740992.0}", "9007199254740992", &n), "");
    CHECK_EQ_STR(violations("{\"enum\": [9007199254740992.0]}", "9007199254740993", &n),
                 "|enum|must be one of [9007199254740992.0]");
    CHECK_EQ_STR(violations("{\"enum\": [9007199254740993]}", "9007199254740992.0", &n),
                 "|enum|must be one of [9007199254740993]");
    CHECK_EQ_STR(violations("{\"enum\": [2]}", "2.0", &n), "");
    /* beyond the integers, and between two of them */
    CHECK_EQ_STR(violations("{\"maximum\": 9.3e18}", "9223372036854775807", &n), "");
    CHECK_EQ_STR(violations("{\"minimum\": -9.3e18}", "-9223372036854775808", &n), "");
    CHECK_EQ_STR(violations("{\"minimum\": 1e19}", "9223372036854775807", &n),
                 "|minimum|must be >= 1e+19");
    CHECK_EQ_STR(violations("{\"minimum\": -0.5}", "-1", &n), "|minimum|must be >= -0.5");
    CHECK_EQ_STR(violations("{\"minimum\": -0.5, \"maximum\": -0.25}", "0", &n),
                 "|maximum|must be <= -0.25");
}

/* Found by fuzz_schema: a long enum or pattern shown with "%.200s" could end inside a
 * UTF-8 character; jansson then refused the message, so the violation had none (and
 * the pipeline printed a NULL with "%s"). */
TEST(schema_messages_cut_at_characters)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"enum\": [\"a");
    for (int i = 0; i < 150; i++)
        buf_puts(&b, "\xc3\xa9");
    buf_puts(&b, "\"], \"pattern\": \"^x|a");
    for (int i = 0; i < 150; i++)
        buf_puts(&b, "\xc3\xa9");
    buf_puts(&b, "\"}");
    json_t *js = J(b.data), *inst = J("\"b\""), *arr = json_array();
    struct schema *s = NULL;
    CHECK_EQ_INT(schema_compile(js, &s, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(schema_validate(s, inst, arr), 2);
    for (size_t i = 0; i < 2; i++) {
        const char *m = json_string_value(json_object_get(json_array_get(arr, i), "message"));
        CHECK(m != NULL);
        CHECK(strlen(m) > 200);
    }
    CHECK_EQ_INT(utf8_prefix_len("a\xc3\xa9", 3, 2), 1);
    CHECK_EQ_INT(utf8_prefix_len("a\xc3\xa9", 3, 3), 3);
    CHECK_EQ_INT(utf8_prefix_len("\xf0\x9f\x98\x80z", 5, 3), 0);
    schema_free(s);
    json_decref(arr);
    json_decref(inst);
    json_decref(js);
    buf_release(&b);
}

TEST(schema_unicode_length)
{
    int n;
    /* "héllo" is 5 code points, 6 bytes; "日本語" 3 code points, 9 bytes; an emoji 1/4 */
    CHECK_EQ_STR(violations("{\"maxLength\": 5}", "\"h\\u00e9llo\"", &n), "");
    CHECK_EQ_STR(violations("{\"minLength\": 5, \"maxLength\": 5}", "\"h\\u00e9llo\"", &n), "");
    CHECK_EQ_STR(violations("{\"maxLength\": 3}", "\"\\u65e5\\u672c\\u8a9e\"", &n), "");
    CHECK_EQ_STR(violations("{\"maxLength\": 2}", "\"\\u65e5\\u672c\\u8a9e\"", &n),
                 "|maxLength|must be at most 2 characters long");
    CHECK_EQ_STR(violations("{\"maxLength\": 1}", "\"\\ud83d\\ude00\"", &n), "");
    CHECK_EQ_STR(violations("{\"minLength\": 2}", "\"\\ud83d\\ude00\"", &n),
                 "|minLength|must be at least 2 characters long");
}

TEST(schema_pattern)
{
    int n;
    CHECK_EQ_STR(violations("{\"pattern\": \"^[A-Z]{2}-[0-9]+$\"}", "\"AB-12\"", &n), "");
    CHECK_EQ_STR(violations("{\"pattern\": \"^[A-Z]{2}-[0-9]+$\"}", "\"ab-12\"", &n),
                 "|pattern|must match the pattern ^[A-Z]{2}-[0-9]+$");
    /* unanchored search */
    CHECK_EQ_STR(violations("{\"pattern\": \"[0-9]\"}", "\"abc1def\"", &n), "");
    CHECK_EQ_STR(violations("{\"pattern\": \"(red|blue)\"}", "\"dark blue\"", &n), "");
    /* the whole string counts, even past an embedded NUL */
    CHECK_EQ_STR(violations("{\"pattern\": \"c$\"}", "\"b\\u0000c\"", &n), "");
    CHECK_EQ_STR(violations("{\"pattern\": \"b$\"}", "\"b\\u0000c\"", &n),
                 "|pattern|must match the pattern b$");
    /* patterns do not apply to non-strings */
    CHECK_EQ_STR(violations("{\"pattern\": \"^x$\"}", "5", &n), "");
}

TEST(schema_objects_and_arrays)
{
    int n;
    const char *s = "{\"type\": \"object\", \"required\": [\"sku\", \"price\"],"
                    " \"additionalProperties\": false,"
                    " \"properties\": {\"sku\": {\"type\": \"string\"},"
                    "  \"price\": {\"type\": \"object\", \"required\": [\"amount\"],"
                    "    \"properties\": {\"amount\": {\"type\": \"integer\", \"minimum\": 0}}},"
                    "  \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\","
                    "    \"maxLength\": 3}}}}";
    CHECK_EQ_STR(
        violations(s, "{\"sku\": \"A\", \"price\": {\"amount\": 5}, \"tags\": [\"x\"]}", &n), "");
    CHECK_EQ_INT(n, 0);
    /* every violation, nested, with exact pointers */
    CHECK_EQ_STR(violations(s,
                            "{\"price\": {\"amount\": -5}, \"tags\": [\"ok\", 7, \"long!\"],"
                            " \"a/b\": 1, \"m~n\": 2}",
                            &n),
                 "/sku|required|is required;"
                 "/price/amount|minimum|must be >= 0;"
                 "/tags/1|type|must be of type string (got integer);"
                 "/tags/2|maxLength|must be at most 3 characters long;"
                 "/a~1b|additionalProperties|is not allowed;"
                 "/m~0n|additionalProperties|is not allowed");
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_STR(violations(s, "{\"sku\": \"A\", \"price\": {}}", &n),
                 "/price/amount|required|is required");
    CHECK_EQ_STR(violations(s, "[]", &n), "|type|must be of type object (got array)");
    /* escaping in property names of the schema too */
    CHECK_EQ_STR(violations("{\"properties\": {\"x/y~z\": {\"properties\":"
                            " {\"\": {\"type\": \"null\"}}}}}",
                            "{\"x/y~z\": {\"\": 0}}", &n),
                 "/x~1y~0z/|type|must be of type null (got integer)");
    /* items of items */
    CHECK_EQ_STR(violations("{\"items\": {\"items\": {\"enum\": [1]}}}", "[[1], [1, 2], []]", &n),
                 "/1/1|enum|must be one of [1]");
}

TEST(schema_compile_errors)
{
    int n;
    CHECK_EQ_STR(violations("[]", "1", &n), "COMPILE ERROR at : a schema must be an object");
    CHECK_EQ_STR(violations("{\"properties\": {\"price\": {\"minimum\": \"0\"}}}", "1", &n),
                 "COMPILE ERROR at properties.price.minimum: must be a number");
    CHECK_EQ_STR(violations("{\"properties\": {\"price\": {\"minimun\": 0}}}", "1", &n),
                 "COMPILE ERROR at properties.price.minimun: unknown keyword \"minimun\"");
    CHECK_EQ_STR(violations("{\"type\": [\"string\", \"text\"]}", "1", &n),
                 "COMPILE ERROR at type.1: unknown type \"text\" (expected string, number, "
                 "integer, boolean, object, array or null)");
    CHECK_EQ_STR(violations("{\"type\": [\"string\", \"string\"]}", "1", &n),
                 "COMPILE ERROR at type.1: duplicate type \"string\"");
    CHECK_EQ_STR(violations("{\"type\": []}", "1", &n),
                 "COMPILE ERROR at type: must be a type name or a non-empty array of them");
    CHECK_EQ_STR(violations("{\"required\": [\"a\", 3]}", "1", &n),
                 "COMPILE ERROR at required.1: must be a string");
    CHECK_EQ_STR(violations("{\"required\": \"a\"}", "1", &n),
                 "COMPILE ERROR at required: must be an array of member names");
    CHECK_EQ_STR(violations("{\"items\": {\"properties\": {\"a\": 5}}}", "1", &n),
                 "COMPILE ERROR at items.properties.a: a schema must be an object");
    CHECK_EQ_STR(violations("{\"items\": [{}]}", "1", &n),
                 "COMPILE ERROR at items: a schema must be an object");
    CHECK_EQ_STR(violations("{\"enum\": []}", "1", &n),
                 "COMPILE ERROR at enum: must be a non-empty array");
    CHECK_EQ_STR(violations("{\"minLength\": -1}", "1", &n),
                 "COMPILE ERROR at minLength: must be a non-negative integer");
    CHECK_EQ_STR(violations("{\"maxLength\": 2.5}", "1", &n),
                 "COMPILE ERROR at maxLength: must be a non-negative integer");
    CHECK_EQ_STR(violations("{\"additionalProperties\": {}}", "1", &n),
                 "COMPILE ERROR at additionalProperties: must be true or false (schemas are "
                 "not supported here)");
    CHECK_EQ_STR(violations("{\"pattern\": 5}", "1", &n),
                 "COMPILE ERROR at pattern: must be a string (a POSIX extended regular "
                 "expression)");
    CHECK_EQ_STR(violations("{\"pattern\": \"(a\\\\1)\"}", "1", &n),
                 "COMPILE ERROR at pattern: back-references (\\1) are not supported");
    CHECK_EQ_STR(violations("{\"title\": 1}", "1", &n), "COMPILE ERROR at title: must be a string");
    CHECK_EQ_STR(
        violations("{\"title\": \"t\", \"description\": \"d\", \"$comment\": \"c\"}", "1", &n), "");
    /* a bad regex: message comes from regerror() */
    const char *r = violations("{\"properties\": {\"a\": {\"pattern\": \"([a-z\"}}}", "1", &n);
    const char *want = "COMPILE ERROR at properties.a.pattern: invalid POSIX extended regular "
                       "expression: ";
    if (strncmp(r, want, strlen(want)) != 0 || strlen(r) <= strlen(want))
        TH_FAIL("got \"%s\"", r);
}

/* Found by fuzz_schema: glibc's regcomp() copies a repeated element once per repetition,
 * so stacked '+' double the compiled size each time: a 150-byte pattern of "x+++..."
 * took gigabytes, and "a{,30000}" 7 GB and half a minute. */
TEST(schema_pattern_complexity_limit)
{
    int n;
    const char *too_complex = "COMPILE ERROR at pattern: pattern is too complex: more than 1024 "
                              "elements once repetitions are expanded";
    const char *bad[] = {
        "{\"pattern\": \"^(\xc3\xa9|\\\\.)+\xc3\xa9|\\\\.)++++++++++++++++++++++++++++++++++$\"}",
        "{\"pattern\": \"a{,30000}\"}",
        "{\"pattern\": \"a{0,1025}\"}",
        "{\"pattern\": \"(a{10}){103}\"}",
        "{\"pattern\": \"((((((((((x+)+)+)+)+)+)+)+)+)+)+\"}",
        "{\"pattern\": \"[[:alpha:]]{2}{3}{4}{5}{6}{2}\"}",
        "{\"pattern\": \"\xc3\xa9{600}\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *got = violations(bad[i], "\"x\"", &n);
        if (strcmp(got, too_complex) != 0)
            TH_FAIL("%s: %s", bad[i], got);
    }
    const char *ok[] = {
        "{\"pattern\": \"^[a-z]{1,255}$\"}",
        "{\"pattern\": \"^[0-9]{1,3}(\\\\.[0-9]{1,3}){3}$\"}",
        "{\"pattern\": \"^[^@]{1,64}@[^@]{1,255}$\"}",
        "{\"pattern\": \"^(\\\\+|-)?[0-9]+(\\\\.[0-9]+)?([eE][+-]?[0-9]+)?$\"}",
        "{\"pattern\": \"a{1024}\"}",
        "{\"pattern\": \"((a{30}){30})\"}",
        "{\"pattern\": \"[]a[:digit:]]+\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *got = violations(ok[i], "\"x\"", &n);
        if (strncmp(got, "COMPILE ERROR", 13) == 0)
            TH_FAIL("%s: %s", ok[i], got);
    }
}

/* Found by fuzz_schema (a 10 s timeout): with an anchor in the pattern, glibc's regcomp()
 * is exponential in repetitions of what can match "" and cubic in groups with two such
 * alternatives: "\\]" and 117 stacked '*' took 15 s; "(\\b)*" 20 times, "^(c*)*" 20
 * times, never finished in 10 s; "^(a?|b?)" 200 times took 800 MB; "\\b" 200 times 570 MB. */
TEST(schema_pattern_anchor_blowups)
{
    struct buf b = BUF_INIT;
    const char *unit[] = {"(\\\\b)*", "(c*)*", "(c?)+", "(a|\\\\b)*", "(a?|b?)",
                          "(a*|b*)",  "\\\\b", "^",     "(^|$)"};
    for (size_t i = 0; i < sizeof unit / sizeof unit[0]; i++) {
        buf_reset(&b);
        buf_puts(&b, "{\"pattern\": \"^");
        for (int k = 0; k < 20; k++)
            buf_puts(&b, unit[i]);
        buf_puts(&b, "$\"}");
        json_t *js = J(b.data);
        struct schema *s = (struct schema *)1;
        char err[256];
        if (schema_compile(js, &s, err, sizeof err, NULL, 0) != -1 || s != NULL ||
            strncmp(err, "pattern is too complex: ", 24) != 0)
            TH_FAIL("%s was compiled (or refused for another reason: %s)", b.data, err);
        json_decref(js);
    }
    buf_reset(&b);
    buf_puts(&b, "{\"pattern\": \"\\\\t\\\\]");
    for (int k = 0; k < 117; k++)
        buf_putc(&b, '*');
    buf_puts(&b, "]\"}");
    int n;
    if (strncmp(violations(b.data, "\"x\"", &n), "COMPILE ERROR at pattern: pattern is too complex",
                48) != 0)
        TH_FAIL("stacked '*' compiled");
    /* what real patterns do stays allowed */
    const char *ok[] = {"^(foo|bar)?$", "\\\\bword\\\\b", "^(a|b|)$",          "(ab*)*",
                        "([a-z]+ ?)*",  "^((a|b)?c)*$",   "^[a-z]*(-[a-z]+)*$"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        buf_reset(&b);
        buf_printf(&b, "{\"pattern\": \"%s\"}", ok[i]);
        if (strncmp(violations(b.data, "\"x\"", &n), "COMPILE ERROR", 13) == 0)
            TH_FAIL("%s: %s", ok[i], violations(b.data, "\"x\"", &n));
    }
    buf_release(&b);
}

TEST(schema_depth_limit_and_null_args)
{
    char err[128], where[512];
    struct buf b = BUF_INIT;
    for (int i = 0; i < 40; i++)
        buf_puts(&b, "{\"items\": ");
    buf_puts(&b, "{}");
    for (int i = 0; i < 40; i++)
        buf_puts(&b, "}");
    json_t *js = J(b.data);
    struct schema *s = (struct schema *)1;
    CHECK_EQ_INT(schema_compile(js, &s, err, sizeof err, where, sizeof where), -1);
    CHECK(s == NULL);
    CHECK_EQ_STR(err, "schemas nest more than 32 levels deep");
    CHECK(strncmp(where, "items.items.", 12) == 0);
    json_decref(js);
    buf_release(&b);
    /* no message buffers at all */
    js = J("{\"bogus\": 1}");
    CHECK_EQ_INT(schema_compile(js, &s, NULL, 0, NULL, 0), -1);
    json_decref(js);
    js = J("{\"type\": \"integer\"}");
    CHECK_EQ_INT(schema_compile(js, &s, NULL, 0, NULL, 0), 0);
    json_t *inst = json_string("x");
    CHECK_EQ_INT(schema_validate(s, inst, NULL), 1); /* counting only */
    json_decref(inst);
    schema_free(s);
    schema_free(NULL);
    json_decref(js);
}

/* ---- map ------------------------------------------------------------------------ */

static int map_run(const char *spec_text, json_t *ctx, char *err, size_t errlen)
{
    char where[128];
    json_t *spec = J(spec_text);
    struct map *m = NULL;
    int rc = map_compile(spec, &m, err, errlen, where, sizeof where);
    json_decref(spec);
    if (rc < 0) {
        fprintf(stderr, "unexpected compile error at %s: %s\n", where, err);
        return -2;
    }
    rc = map_apply(m, ctx, err, errlen);
    map_free(m);
    return rc;
}

TEST(map_each_op)
{
    char err[256];
    json_t *ctx = ctx_fixture();
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"set\", \"path\": \"label\","
                         " \"value\": \"{{data.title}} ({{data.attributes.color}})\"}]}",
                         ctx, err, sizeof err),
                 0);
    CHECK_EQ_STR(json_string_value(path_get(ctx, "data.label")), "Lamp (red & blue/green)");
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"copy\", \"from\": \"attributes.color\","
                         " \"path\": \"meta.color\"}]}",
                         ctx, err, sizeof err),
                 0);
    CHECK_EQ_STR(json_string_value(path_get(ctx, "data.meta.color")), "red & blue/green");
    CHECK_EQ_STR(json_string_value(path_get(ctx, "data.attributes.color")), "red & blue/green");
    CHECK(path_get(ctx, "data.meta.color") != path_get(ctx, "data.attributes.color"));
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"rename\", \"from\": \"items.0.sku\","
                         " \"path\": \"firstSku\"}]}",
                         ctx, err, sizeof err),
                 0);
    CHECK_EQ_STR(json_string_value(path_get(ctx, "data.firstSku")), "X1");
    CHECK(path_get(ctx, "data.items.0.sku") == NULL);
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"remove\", \"path\": \"attributes\"},"
                         " {\"op\": \"remove\", \"path\": \"not.there\"}]}",
                         ctx, err, sizeof err),
                 0);
    CHECK(path_get(ctx, "data.attributes") == NULL);
    /* the rest of the context is untouched */
    CHECK_EQ_STR(json_string_value(path_get(ctx, "ref")), "r-1");
    json_decref(ctx);
}

TEST(map_chained_ops_and_typed_values)
{
    char err[256];
    json_t *ctx = J("{\"data\": {\"sku\": \"A-1\", \"price\": {\"amount\": 1999, \"cur\": \"EUR\"},"
                    " \"description\": \"long\", \"title\": \"Lamp\"}, \"ref\": \"r9\"}");
    CHECK_EQ_INT(
        map_run("{\"ops\": ["
                " {\"op\": \"rename\", \"from\": \"sku\", \"path\": \"id\"},"
                " {\"op\": \"copy\", \"from\": \"price.amount\", \"path\": \"priceCents\"},"
                " {\"op\": \"remove\", \"path\": \"description\"},"
                " {\"op\": \"set\", \"path\": \"ext\", \"value\": {\"key\": \"{{data.id}}\","
                "   \"cents\": \"{{data.priceCents}}\", \"ref\": \"{{ref}}\", \"n\": [1, null]}},"
                " {\"op\": \"remove\", \"path\": \"price\"},"
                " {\"op\": \"set\", \"path\": \"title\", \"value\": \"{{data.title}}!\"}"
                "]}",
                ctx, err, sizeof err),
        0);
    CHECK_EQ_STR(D(json_object_get(ctx, "data")),
                 "{\"ext\":{\"cents\":1999,\"key\":\"A-1\",\"n\":[1,null],\"ref\":\"r9\"},"
                 "\"id\":\"A-1\",\"priceCents\":1999,\"title\":\"Lamp!\"}");
    /* rename into its own subtree and out of it */
    CHECK_EQ_INT(
        map_run("{\"ops\": [{\"op\": \"rename\", \"from\": \"ext\", \"path\": \"ext.inner\"},"
                " {\"op\": \"rename\", \"from\": \"ext.inner.key\", \"path\": \"ext\"},"
                " {\"op\": \"rename\", \"from\": \"id\", \"path\": \"id\"}]}",
                ctx, err, sizeof err),
        0);
    CHECK_EQ_STR(D(json_object_get(ctx, "data")),
                 "{\"ext\":\"A-1\",\"id\":\"A-1\",\"priceCents\":1999,\"title\":\"Lamp!\"}");
    json_decref(ctx);
}

TEST(map_apply_errors_keep_data)
{
    char err[256];
    json_t *ctx = J("{\"data\": {\"a\": 1, \"s\": \"str\"}}");
    const char *before = "{\"a\":1,\"s\":\"str\"}";
    json_t *orig = json_object_get(ctx, "data");
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"set\", \"path\": \"b\", \"value\": 2},"
                         " {\"op\": \"copy\", \"from\": \"price.amount\", \"path\": \"x\"}]}",
                         ctx, err, sizeof err),
                 -1);
    CHECK_EQ_STR(err, "ops[1] (copy): price.amount is missing");
    CHECK_EQ_STR(D(json_object_get(ctx, "data")), before);
    CHECK(json_object_get(ctx, "data") == orig); /* the very same object is back */

    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"rename\", \"from\": \"zz\", \"path\": \"x\"}]}",
                         ctx, err, sizeof err),
                 -1);
    CHECK_EQ_STR(err, "ops[0] (rename): zz is missing");
    /* the first failing op stops the step */
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"copy\", \"from\": \"q1\", \"path\": \"x\"},"
                         " {\"op\": \"copy\", \"from\": \"q2\", \"path\": \"y\"}]}",
                         ctx, err, sizeof err),
                 -1);
    CHECK_EQ_STR(err, "ops[0] (copy): q1 is missing");
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"remove\", \"path\": \"a\"},"
                         " {\"op\": \"set\", \"path\": \"s.x\", \"value\": 1}]}",
                         ctx, err, sizeof err),
                 -1);
    CHECK_EQ_STR(err, "ops[1] (set): cannot set s.x: s is a string");
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"set\", \"path\": \"t\","
                         " \"value\": {\"k\": \"{{data.title}}\"}}]}",
                         ctx, err, sizeof err),
                 -1);
    CHECK_EQ_STR(err, "ops[0] (set): k: data.title is missing");
    CHECK_EQ_STR(D(json_object_get(ctx, "data")), before);
    json_decref(ctx);

    ctx = J("{\"data\": [1, 2]}");
    CHECK_EQ_INT(
        map_run("{\"ops\": [{\"op\": \"remove\", \"path\": \"a\"}]}", ctx, err, sizeof err), -1);
    CHECK_EQ_STR(err, "data is not an object");
    json_decref(ctx);
    ctx = J("{\"ref\": \"x\"}");
    CHECK_EQ_INT(map_run("{\"ops\": []}", ctx, err, sizeof err), -1);
    CHECK_EQ_STR(err, "data is missing");
    json_decref(ctx);
}

/* One convert op on {"v": <value_text>}: the new value as compact JSON, or "ERR <message>". */
static const char *convert_one(const char *to, const char *value_text)
{
    static char out[4200];
    char err[256], spec[128], ctxt[1024];
    snprintf(spec, sizeof spec,
             "{\"ops\": [{\"op\": \"convert\", \"path\": \"v\", \"to\": \"%s\"}]}", to);
    snprintf(ctxt, sizeof ctxt, "{\"data\": {\"v\": %s}}", value_text);
    json_t *ctx = J(ctxt);
    if (map_run(spec, ctx, err, sizeof err) < 0)
        snprintf(out, sizeof out, "ERR %s", err);
    else
        snprintf(out, sizeof out, "%s", D(json_object_get(json_object_get(ctx, "data"), "v")));
    json_decref(ctx);
    return out;
}

#define NOT_A_NUMBER " is not a number (write it as in JSON: 12.5, -3, 1e6)"

TEST(map_convert)
{
    /* {to, the value as JSON, what it becomes or "ERR <message>"; "ERR" alone: any error} */
    static const char *const cases[][3] = {
        /* number: JSON's spelling; integers that fit int64 stay integers */
        {"number", "\"12.5\"", "12.5"},
        {"number", "\"-3\"", "-3"},
        {"number", "\" 42\\t\"", "42"},
        {"number", "\"1e6\"", "1000000.0"},
        {"number", "\"0.5E-2\"", "0.005"},
        {"number", "\"99999999999999999999\"", "1e20"},
        {"number", "\"12,5\"", "ERR ops[0] (convert): v: \"12,5\"" NOT_A_NUMBER},
        {"number", "\"+1\"", "ERR"},
        {"number", "\"007\"", "ERR"},
        {"number", "\"NaN\"", "ERR"},
        {"number", "\"1.\"", "ERR"},
        {"number", "\".5\"", "ERR"},
        {"number", "\"1e\"", "ERR"},
        {"number", "\"-\"", "ERR"},
        {"number", "\"1 2\"", "ERR"},
        {"number", "\"1e999\"", "ERR ops[0] (convert): v: \"1e999\" is too large for a number"},
        /* integer */
        {"integer", "\"-9223372036854775808\"", "-9223372036854775808"},
        {"integer", "\"9223372036854775808\"",
         "ERR ops[0] (convert): v: \"9223372036854775808\" is outside the 64-bit integer range"},
        {"integer", "\"12.0\"", "ERR ops[0] (convert): v: \"12.0\" is not an integer"},
        {"integer", "12.0", "12"},
        {"integer", "12.5", "ERR ops[0] (convert): v: 12.5 is not an integer"},
        {"integer", "7", "7"},
        /* boolean */
        {"boolean", "\"TRUE\"", "true"},
        {"boolean", "\"False\"", "false"},
        {"boolean", "\"1\"", "true"},
        {"boolean", "\" 0 \"", "false"},
        {"boolean", "true", "true"},
        {"boolean", "\"yes\"",
         "ERR ops[0] (convert): v: \"yes\" is not a boolean (true, false, 1 or 0)"},
        {"boolean", "1",
         "ERR ops[0] (convert): v is a number, which does not convert to a boolean"},
        /* empty and null: null; other kinds fail; a long value is cut in the message */
        {"number", "\"\"", "null"},
        {"boolean", "\"  \"", "null"},
        {"integer", "null", "null"},
        {"number", "[1]",
         "ERR ops[0] (convert): v is an array, which does not convert to a number"},
        {"integer", "{}",
         "ERR ops[0] (convert): v is an object, which does not convert to an integer"},
        {"number", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
         "ERR ops[0] (convert): v: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"" NOT_A_NUMBER},
        {"number", "\"\\u0000\"", "ERR ops[0] (convert): v: \"\"" NOT_A_NUMBER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = convert_one(cases[i][0], cases[i][1]);
        if (strcmp(cases[i][2], "ERR") == 0)
            CHECK(strncmp(got, "ERR ", 4) == 0);
        else
            CHECK_EQ_STR(got, cases[i][2]);
    }

    /* a missing path fails; a nested path converts in place; later ops see the result */
    char err[256];
    json_t *ctx = J("{\"data\": {\"p\": {\"q\": \"5\"}}}");
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"convert\", \"path\": \"p.q\", \"to\": \"integer\"},"
                         " {\"op\": \"set\", \"path\": \"r\", \"value\": \"{{data.p.q}}\"}]}",
                         ctx, err, sizeof err),
                 0);
    CHECK_EQ_STR(D(json_object_get(ctx, "data")), "{\"p\":{\"q\":5},\"r\":5}");
    CHECK_EQ_INT(map_run("{\"ops\": [{\"op\": \"convert\", \"path\": \"zz\", \"to\": \"number\"}]}",
                         ctx, err, sizeof err),
                 -1);
    CHECK_EQ_STR(err, "ops[0] (convert): zz is missing");
    json_decref(ctx);
}

static const char *map_compile_error(const char *spec_text)
{
    static char out[512];
    char err[256], where[128];
    json_t *spec = J(spec_text);
    struct map *m = (struct map *)1;
    if (map_compile(spec, &m, err, sizeof err, where, sizeof where) == 0)
        snprintf(out, sizeof out, "OK");
    else
        snprintf(out, sizeof out, "%s: %s%s", where, err, m ? " (out not NULL)" : "");
    map_free(m);
    json_decref(spec);
    return out;
}

TEST(map_compile_errors_with_where)
{
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"remove\", \"path\": \"a\"}]}"), "OK");
    CHECK_EQ_STR(map_compile_error("[]"), ": a map step must be an object");
    CHECK_EQ_STR(map_compile_error("{}"), "ops: ops is required");
    CHECK_EQ_STR(map_compile_error("{\"ops\": {}}"), "ops: ops must be an array");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [], \"extra\": 1}"),
                 "extra: unknown member \"extra\" (a map step has only \"ops\")");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"remove\", \"path\": \"a\"}, 5]}"),
                 "ops[1]: an op must be an object");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"path\": \"a\"}]}"), "ops[0].op: op is required");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"move\", \"path\": \"a\"}]}"),
                 "ops[0].op: unknown op \"move\" (expected set, copy, rename, remove or convert)");
    CHECK_EQ_STR(
        map_compile_error("{\"ops\": [{\"op\": 1, \"path\": \"a\"}]}"),
        "ops[0].op: unknown op (not a string) (expected set, copy, rename, remove or convert)");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"remove\", \"path\": \"a\"},"
                                   " {\"op\": \"set\", \"path\": \"x\", \"value\": 1},"
                                   " {\"op\": \"copy\", \"from\": \"a\", \"path\": \"b..c\"}]}"),
                 "ops[2].path: path has an empty segment at offset 2");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"copy\", \"path\": \"b\"}]}"),
                 "ops[0].from: from is required");
    CHECK_EQ_STR(
        map_compile_error("{\"ops\": [{\"op\": \"copy\", \"form\": \"a\", \"path\": \"b\"}]}"),
        "ops[0].form: unknown member \"form\" for op copy");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"set\", \"from\": \"a\", \"path\": \"b\","
                                   " \"value\": 1}]}"),
                 "ops[0].from: unknown member \"from\" for op set");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"set\", \"path\": \"b\"}]}"),
                 "ops[0].value: value is required");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"convert\", \"path\": \"b\"}]}"),
                 "ops[0].to: to is required (number, integer or boolean)");
    CHECK_EQ_STR(
        map_compile_error("{\"ops\": [{\"op\": \"convert\", \"path\": \"b\", \"to\": \"float\"}]}"),
        "ops[0].to: to must be \"number\", \"integer\" or \"boolean\"");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"convert\", \"path\": \"b\", \"to\": "
                                   "\"number\", \"from\": \"a\"}]}"),
                 "ops[0].from: unknown member \"from\" for op convert");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"copy\", \"from\": \"a\", \"path\": \"b\","
                                   " \"to\": \"number\"}]}"),
                 "ops[0].to: unknown member \"to\" for op copy");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"remove\", \"path\": 5}]}"),
                 "ops[0].path: path must be a string");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"set\", \"path\": \"b\","
                                   " \"value\": \"{{data.x\"}]}"),
                 "ops[0].value: unclosed '{{' at offset 0");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"set\", \"path\": \"b\","
                                   " \"value\": {\"t\": [\"ok\", \"}} oops\"]}}]}"),
                 "ops[0].value.t[1]: '}}' without '{{' at offset 0");
    CHECK_EQ_STR(map_compile_error("{\"ops\": [{\"op\": \"set\", \"path\": \"b\","
                                   " \"value\": [\"{{}}\"]}]}"),
                 "ops[0].value[0]: bad placeholder at offset 0: path is empty");
}

/* ---- size budgets ----------------------------------------------------------------- */

/* template_json_len is the length template_put_json writes, and stops at its cap. */
TEST(template_json_len_bounds)
{
    const char *vals[] = {"1",
                          "-17",
                          "2.5",
                          "1e300",
                          "true",
                          "false",
                          "null",
                          "\"a\\\"b\\n\\u0001\"",
                          "[]",
                          "{}",
                          "[1,[2,{}],\"x\"]",
                          "{\"a\":{\"b\":[1,2]},\"c\":\"\\u00e9\"}"};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        json_t *v = J(vals[i]);
        struct buf b = BUF_INIT;
        template_put_json(&b, v);
        size_t n = template_json_len(v, 1000);
        CHECK_EQ_INT(n, b.len);
        CHECK_EQ_INT(template_json_len(v, b.len - 1), b.len); /* cap + 1: too long */
        buf_release(&b);
        json_decref(v);
    }
    CHECK_EQ_INT(template_json_len(NULL, 10), 0);
    json_t *big = J("{\"a\":\"0123456789\",\"b\":[1,2,3,4,5,6,7,8,9,10]}");
    CHECK_EQ_INT(template_json_len(big, 5), 6);
    json_decref(big);
}

/* Rendering charges each piece before appending it: past the budget nothing is left
 * in out and the budget is as it was. */
TEST(template_render_within_budget)
{
    char err[256];
    json_t *ctx = J("{\"a\": \"xxxxxxxxxx\", \"sp\": \"a b\", \"o\": {\"k\": [1, 2]}}");
    struct buf out = BUF_INIT;
    buf_puts(&out, "pre:");
    size_t budget = 25;
    CHECK_EQ_INT(template_render_within("{{a}}{{a}}", ctx, 0, &budget, &out, err, sizeof err), 0);
    CHECK_EQ_STR(out.data, "pre:xxxxxxxxxxxxxxxxxxxx");
    CHECK_EQ_INT(budget, 5);
    budget = 15;
    CHECK_EQ_INT(template_render_within("-{{a}}{{a}}", ctx, 0, &budget, &out, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    CHECK_EQ_STR(err, "the value of a would pass the size limit (4 bytes left)");
    CHECK_EQ_STR(out.data, "pre:xxxxxxxxxxxxxxxxxxxx");
    CHECK_EQ_INT(budget, 15);
    budget = 3; /* literal text counts too */
    CHECK_EQ_INT(template_render_within("abcd", ctx, 0, &budget, &out, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    /* percent-encoding is charged at its encoded length: "a%20b" is 5 bytes */
    budget = 4;
    CHECK_EQ_INT(template_render_within("{{sp}}", ctx, 1, &budget, &out, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    budget = 5;
    CHECK_EQ_INT(template_render_within("{{sp}}", ctx, 1, &budget, &out, err, sizeof err), 0);
    CHECK_EQ_INT(budget, 0);
    budget = 12; /* {"k":[1,2]} is 11 */
    CHECK_EQ_INT(template_render_within("{{o}}", ctx, 0, &budget, &out, err, sizeof err), 0);
    CHECK_EQ_INT(budget, 1);
    budget = 10;
    CHECK_EQ_INT(template_render_within("{{o}}", ctx, 0, &budget, &out, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    /* other errors keep their code */
    CHECK_EQ_INT(template_render_within("{{nope}}", ctx, 0, &budget, &out, err, sizeof err),
                 -SLUICE_E_TEMPLATE_ERROR);
    buf_release(&out);
    json_decref(ctx);
}

/* The measure is what the pipeline's writer writes, byte for byte: reals in their
 * short form (not jansson's 17 digits), escapes, and a string jansson holds unchecked
 * (an upstream's body) whose bad byte the writer replaces with \ufffd. */
TEST(template_measure_is_what_is_written)
{
    json_t *v = json_pack("{s:[f,f,f],s:o,s:o,s:s}", "r", 0.1, 19.99, 1e21, "bad",
                          json_stringn_nocheck("a\xff\x01"
                                               "b",
                                               4),
                          "ok", json_stringn("\xc3\xa9\x7f\"\b", 5), "k\x01", "x");
    size_t n = 0;
    char *text = jsonw_dump(v, &n);
    CHECK_EQ_STR(
        text,
        "{\"r\":[0.1,19.99,1e+21],\"bad\":\"a\\ufffd\\u0001b\",\"ok\":\"\xc3\xa9\x7f\\\"\\u0008\","
        "\"k\\u0001\":\"x\"}");
    CHECK_EQ_INT(n, strlen(text));
    CHECK_EQ_INT(template_json_len(v, SIZE_MAX), n);
    CHECK_EQ_INT(template_json_len(v, n), n);
    CHECK_EQ_INT(template_json_len(v, n - 1), n); /* cap + 1 */
    struct buf b = BUF_INIT;
    template_put_json(&b, v);
    CHECK_EQ_STR(b.data, text);
    buf_release(&b);
    free(text);
    json_decref(v);
    text = jsonw_dump(NULL, &n);
    CHECK_EQ_STR(text, "");
    free(text);
}

/* A rendered string is charged as it is written in the JSON value (escaped), not as
 * its raw bytes: "\u0001" is one byte of text but six of the body. */
TEST(template_eval_charges_escaped_text)
{
    char err[256];
    char s[101];
    memset(s, 1, 100);
    s[100] = '\0';
    json_t *ctx = json_pack("{s:{s:s}}", "data", "s", s);
    json_t *tpl = J("{\"a\": \"x{{data.s}}\", \"b\": \"\\u0002{{data.s}}\"}");
    json_t *out = NULL;
    size_t budget = 10000;
    CHECK_EQ_INT(template_eval_within(tpl, ctx, &budget, &out, err, sizeof err), 0);
    char *text = jsonw_dump(out, NULL);
    CHECK_EQ_INT(strlen(text), 1222); /* {"a":"x<600>","b":"\\u0002<600>"} */
    CHECK(10000 - budget >= strlen(text));
    CHECK(10000 - budget <= strlen(text) + 2);
    free(text);
    json_decref(out);
    budget = 1000; /* the raw text (2 x 101 bytes) would fit; its JSON does not */
    CHECK_EQ_INT(template_eval_within(tpl, ctx, &budget, &out, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    CHECK(out == NULL);
    CHECK(strncmp(err, "b: the value of data.s would pass the size limit", 48) == 0);
    json_decref(tpl);
    json_decref(ctx);
}

TEST(template_eval_within_budget)
{
    char err[256];
    json_t *ctx = J("{\"data\": {\"a\": \"0123456789\", \"n\": [1, 2, 3]}}");
    json_t *tpl = J("{\"x\": \"{{data.a}}{{data.a}}\", \"y\": \"{{data.n}}\", \"z\": 7}");
    json_t *out = NULL;
    size_t budget = 1000;
    CHECK_EQ_INT(template_eval_within(tpl, ctx, &budget, &out, err, sizeof err), 0);
    CHECK_EQ_STR(D(out), "{\"x\":\"01234567890123456789\",\"y\":[1,2,3],\"z\":7}");
    /* the charge bounds the compact text: {"x":"...20...","y":[1,2,3],"z":7} */
    char *text = json_dumps(out, JSON_COMPACT);
    CHECK(1000 - budget >= strlen(text));
    CHECK(1000 - budget <= strlen(text) + 4);
    free(text);
    json_decref(out);
    budget = 20; /* "x" fits only with half its text */
    CHECK_EQ_INT(template_eval_within(tpl, ctx, &budget, &out, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    CHECK(out == NULL);
    CHECK(strncmp(err, "x: the value of data.a would pass the size limit", 48) == 0);
    budget = 35; /* "y": a single placeholder's value is measured before it is copied */
    CHECK_EQ_INT(template_eval_within(tpl, ctx, &budget, &out, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    CHECK(strncmp(err, "y: the value of data.n would pass", 33) == 0);
    CHECK_EQ_INT(template_eval_within(tpl, ctx, NULL, &out, err, sizeof err), 0); /* unbounded */
    json_decref(out);
    json_decref(tpl);
    json_decref(ctx);
}

static struct map *map_of(const char *spec_text)
{
    char err[256], where[128];
    json_t *spec = J(spec_text);
    struct map *m = NULL;
    if (map_compile(spec, &m, err, sizeof err, where, sizeof where) < 0)
        fprintf(stderr, "unexpected compile error at %s: %s\n", where, err);
    json_decref(spec);
    return m;
}

/* The amplification: 16 doubling ops over a 1000-byte string would build
 * 65 MB; within 1 MiB the 11th op fails, and the data is what it was. */
TEST(map_within_stops_doubling)
{
    char err[256], where[64];
    struct buf spec = BUF_INIT;
    buf_puts(&spec, "{\"ops\": [");
    for (int i = 0; i < 16; i++)
        buf_printf(&spec, "%s{\"op\":\"set\",\"path\":\"a\",\"value\":\"{{data.a}}{{data.a}}\"}",
                   i ? "," : "");
    buf_puts(&spec, "]}");
    struct map *m = map_of(spec.data);
    buf_release(&spec);
    CHECK(m != NULL);
    json_t *ctx = json_pack("{s:{s:s%}}", "data", "a", "", (size_t)0);
    char *a = malloc(1001);
    memset(a, 'x', 1000);
    a[1000] = '\0';
    json_object_set_new(json_object_get(ctx, "data"), "a", json_string(a));
    json_t *orig = json_object_get(ctx, "data");
    CHECK_EQ_INT(map_apply_within(m, ctx, 1 << 20, where, sizeof where, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    CHECK_EQ_STR(where, "ops[10].value");
    CHECK(strncmp(err, "ops[10] (set): the value of data.a would pass the size limit", 60) == 0);
    CHECK(json_object_get(ctx, "data") == orig);
    CHECK_EQ_INT(json_string_length(json_object_get(orig, "a")), 1000);
    /* with room for all 16 it succeeds: the budget is the only difference */
    CHECK_EQ_INT(map_apply_within(m, ctx, 70u << 20, where, sizeof where, err, sizeof err), 0);
    CHECK_EQ_INT(json_string_length(path_get(ctx, "data.a")), 1000u << 16);
    map_free(m);
    json_decref(ctx);
    free(a);
}

TEST(map_within_copy_and_replace)
{
    char err[256], where[64];
    json_t *ctx = J("{\"data\": {\"a\": \"0123456789012345678901234567890123456789\"}}");
    /* data is 48 bytes: a copy of "a" (42) does not fit in 64 */
    struct map *m = map_of("{\"ops\": [{\"op\": \"copy\", \"from\": \"a\", \"path\": \"b\"}]}");
    CHECK_EQ_INT(map_apply_within(m, ctx, 64, where, sizeof where, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    CHECK_EQ_STR(where, "ops[0].from");
    CHECK_EQ_INT(map_apply_within(m, ctx, 100, where, sizeof where, err, sizeof err), 0);
    map_free(m);
    /* replacing a value gives its room back: a (42) replaced by a value as large */
    json_decref(ctx);
    ctx = J("{\"data\": {\"a\": \"0123456789012345678901234567890123456789\"}}");
    m = map_of("{\"ops\": [{\"op\": \"set\", \"path\": \"a\", "
               "\"value\": \"9876543210987654321098765432109876543210\"}]}");
    CHECK_EQ_INT(map_apply_within(m, ctx, 48, where, sizeof where, err, sizeof err), 0);
    map_free(m);
    /* data already over the limit fails before any op */
    m = map_of("{\"ops\": [{\"op\": \"remove\", \"path\": \"a\"}]}");
    CHECK_EQ_INT(map_apply_within(m, ctx, 20, where, sizeof where, err, sizeof err),
                 -SLUICE_E_ITEM_TOO_LARGE);
    CHECK_EQ_STR(err, "data is larger than 20 bytes");
    /* other errors are MapFailed, with the op's member */
    map_free(m);
    m = map_of("{\"ops\": [{\"op\": \"copy\", \"from\": \"zz\", \"path\": \"b\"}]}");
    CHECK_EQ_INT(map_apply_within(m, ctx, 1000, where, sizeof where, err, sizeof err),
                 -SLUICE_E_MAP_FAILED);
    CHECK_EQ_STR(where, "ops[0].from");
    map_free(m);
    json_decref(ctx);
}

TEST(map_compile_caps_ops)
{
    struct buf spec = BUF_INIT;
    buf_puts(&spec, "{\"ops\": [");
    for (int i = 0; i <= MAP_MAX_OPS; i++)
        buf_printf(&spec, "%s{\"op\":\"remove\",\"path\":\"a\"}", i ? "," : "");
    buf_puts(&spec, "]}");
    CHECK_EQ_STR(map_compile_error(spec.data),
                 "ops: a map step has at most 64 ops, this one has 65");
    /* exactly the cap is fine */
    spec.len = 0;
    buf_puts(&spec, "{\"ops\": [");
    for (int i = 0; i < MAP_MAX_OPS; i++)
        buf_printf(&spec, "%s{\"op\":\"remove\",\"path\":\"a\"}", i ? "," : "");
    buf_puts(&spec, "]}");
    CHECK_EQ_STR(map_compile_error(spec.data), "OK");
    buf_release(&spec);
}

int main(void)
{
    RUN(path_check_accepts_and_rejects);
    RUN(path_check_limits);
    RUN(path_get_objects_and_arrays);
    RUN(path_set_creates_and_replaces);
    RUN(path_set_errors_leave_root_unchanged);
    RUN(path_remove_cases);
    RUN(template_renders_values);
    RUN(template_renders_reals_shortest);
    RUN(template_url_encoding);
    RUN(template_missing_path_is_error);
    RUN(template_syntax_errors);
    RUN(template_eval_typed_and_nested);
    RUN(template_eval_errors_with_location);
    RUN(template_embedded_nul_string);
    RUN(schema_type_keyword);
    RUN(schema_value_keywords);
    RUN(schema_numbers_compare_exactly);
    RUN(schema_messages_cut_at_characters);
    RUN(schema_unicode_length);
    RUN(schema_pattern);
    RUN(schema_objects_and_arrays);
    RUN(schema_compile_errors);
    RUN(schema_pattern_complexity_limit);
    RUN(schema_pattern_anchor_blowups);
    RUN(schema_depth_limit_and_null_args);
    RUN(map_each_op);
    RUN(map_chained_ops_and_typed_values);
    RUN(map_apply_errors_keep_data);
    RUN(map_convert);
    RUN(map_compile_errors_with_where);
    RUN(template_json_len_bounds);
    RUN(template_render_within_budget);
    RUN(template_eval_within_budget);
    RUN(template_measure_is_what_is_written);
    RUN(template_eval_charges_escaped_text);
    RUN(map_within_stops_doubling);
    RUN(map_within_copy_and_replace);
    RUN(map_compile_caps_ops);
    return test_report();
}
