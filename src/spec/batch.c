/* batch.c - the "batch" object of an http step; see batch.h. */
#include "spec/batch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/pointer.h"
#include "lang/template.h"
#include "util/errmsg.h"
#include "util/errors.h"
#include "util/xmalloc.h"

#define STATUS_VALUES_MAX 32

struct bc {
    char *err, *field;
    size_t errlen, fieldlen;
};

static int fail(struct bc *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct bc *c, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errmsg_vset(c->err, c->errlen, fmt, ap);
    va_end(ap);
    if (c->field && c->fieldlen)
        snprintf(c->field, c->fieldlen, "%s", field);
    return -SLUICE_E_INVALID_FIELD;
}

/* 1 when a string inside v holds a control character below 0x20 other than tab, CR
 * and LF: none belongs in a request body's template, and steps/http_batch.c marks the
 * elements' place with one. */
static int has_control(json_t *v)
{
    if (json_is_string(v)) {
        for (const char *p = json_string_value(v); *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n')
                return 1;
        return 0;
    }
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_array(v))
        json_array_foreach(v, i, x) if (has_control(x)) return 1;
    if (json_is_object(v))
        json_object_foreach(v, k, x) if (has_control(x)) return 1;
    return 0;
}

/* How many strings inside v are exactly "{{items}}" (spaces inside the braces allowed,
 * as the template language allows them). */
static int count_items_slots(json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        if (n < 4 || strncmp(s, "{{", 2) || strcmp(s + n - 2, "}}"))
            return 0;
        const char *a = s + 2, *e = s + n - 2;
        while (a < e && (*a == ' ' || *a == '\t'))
            a++;
        while (e > a && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        return (size_t)(e - a) == 5 && !strncmp(a, "items", 5);
    }
    int n = 0;
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_array(v))
        json_array_foreach(v, i, x) n += count_items_slots(x);
    if (json_is_object(v))
        json_object_foreach(v, k, x) n += count_items_slots(x);
    return n;
}

static int get_pointer(struct bc *c, json_t *def, const char *key, char **out)
{
    json_t *v = json_object_get(def, key);
    *out = NULL;
    if (!v)
        return 0;
    char e[120];
    if (!json_is_string(v))
        return fail(c, key, "'%s' must be a JSON pointer string, such as \"/results\"", key);
    if (pointer_check(json_string_value(v), e, sizeof e) < 0)
        return fail(c, key, "'%s': %s", key, e);
    *out = xstrdup(json_string_value(v));
    return 0;
}

static int get_values(struct bc *c, json_t *def, const char *key, json_t **out)
{
    json_t *v = json_object_get(def, key), *x;
    size_t i;
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > STATUS_VALUES_MAX)
        return fail(c, key, "'%s' must be an array of 1 to %d status values", key,
                    STATUS_VALUES_MAX);
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x) && !json_is_integer(x)) {
            char field[64];
            snprintf(field, sizeof field, "%s[%zu]", key, i);
            return fail(c, field, "a status value is a string or an integer");
        }
    }
    *out = json_incref(v);
    return 0;
}

static int get_long(struct bc *c, json_t *def, const char *key, long min, long max, long *out)
{
    json_t *v = json_object_get(def, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return fail(c, key, "'%s' must be an integer from %ld to %ld", key, min, max);
    *out = (long)json_integer_value(v);
    return 0;
}

static int compile(struct bc *c, json_t *def, struct http_batch *b)
{
    static const char *const keys[] = {"maxItems", "maxBytes",  "body",    "results",
                                       "match",    "resultKey", "itemKey", "status",
                                       "success",  "retry",     NULL};
    const char *k;
    json_t *v;
    int rc;
    if (!json_is_object(def))
        return fail(c, "", "batch must be an object with at least maxItems");
    json_object_foreach(def, k, v)
    {
        const char *const *a = keys;
        while (*a && strcmp(*a, k))
            a++;
        if (!*a)
            return fail(c, k, "unknown field '%s'", k);
    }
    if (!json_object_get(def, "maxItems"))
        return fail(c, "maxItems", "'maxItems' is required");
    b->max_bytes = BATCH_DEFAULT_MAX_BYTES;
    if ((rc = get_long(c, def, "maxItems", 2, BATCH_MAX_ITEMS, &b->max_items)) < 0 ||
        (rc = get_long(c, def, "maxBytes", 1024, 16L << 20, &b->max_bytes)) < 0)
        return rc;
    char e[200], where[160];
    if ((v = json_object_get(def, "body"))) {
        where[0] = '\0';
        if (template_check_value(v, e, sizeof e, where, sizeof where) < 0)
            return fail(c, "body", "invalid template at body%s%s: %s",
                        where[0] && where[0] != '[' ? "." : "", where, e);
        if (count_items_slots(v) != 1)
            return fail(c, "body", "the batch body must hold \"{{items}}\" exactly once");
        if (has_control(v))
            return fail(c, "body", "the batch body's strings may not hold control characters");
        b->body = json_incref(v);
    }
    if ((rc = get_pointer(c, def, "results", &b->results)) < 0 ||
        (rc = get_pointer(c, def, "resultKey", &b->result_key)) < 0 ||
        (rc = get_pointer(c, def, "status", &b->status)) < 0 ||
        (rc = get_values(c, def, "success", &b->success)) < 0 ||
        (rc = get_values(c, def, "retry", &b->retry)) < 0)
        return rc;
    if (!b->results)
        b->results = xstrdup("");
    if ((b->success || b->retry) && !b->status)
        return fail(c, "status",
                    "'success' and 'retry' need 'status', the pointer to a "
                    "result's status");
    json_t *m = json_object_get(def, "match");
    if (m && (!json_is_string(m) ||
              (strcmp(json_string_value(m), "position") && strcmp(json_string_value(m), "key"))))
        return fail(c, "match", "match must be \"position\" or \"key\"");
    b->by_key = m && !strcmp(json_string_value(m), "key");
    json_t *ik = json_object_get(def, "itemKey");
    if (!b->by_key && (b->result_key || ik))
        return fail(c, b->result_key ? "resultKey" : "itemKey",
                    "resultKey and itemKey go with \"match\": \"key\"");
    if (b->by_key && !b->result_key)
        return fail(c, "resultKey",
                    "\"match\": \"key\" needs resultKey, the pointer to the "
                    "key in each result");
    if (ik && (!json_is_string(ik) || !json_string_length(ik)))
        return fail(c, "itemKey", "itemKey must be a non-empty template string");
    if (ik && template_check(json_string_value(ik), e, sizeof e) < 0)
        return fail(c, "itemKey", "invalid template: %s", e);
    if (b->by_key)
        b->item_key = xstrdup(ik ? json_string_value(ik) : "{{ref}}");
    return 0;
}

int batch_compile(json_t *def, struct http_batch **out, char *err, size_t errlen, char *field,
                  size_t fieldlen)
{
    struct bc c = {err, field, errlen, fieldlen};
    struct http_batch *b = xcalloc(1, sizeof *b);
    int rc = compile(&c, def, b);
    if (rc < 0) {
        batch_free(b);
        b = NULL;
    }
    *out = b;
    return rc;
}

void batch_free(struct http_batch *b)
{
    if (!b)
        return;
    json_decref(b->body);
    free(b->results);
    free(b->result_key);
    free(b->item_key);
    free(b->status);
    json_decref(b->success);
    json_decref(b->retry);
    free(b);
}

int batch_status_in(const json_t *list, const json_t *v)
{
    if (!v)
        return 0;
    if (!list)
        return json_is_integer(v) && json_integer_value(v) >= 200 && json_integer_value(v) <= 299;
    size_t i;
    json_t *x;
    json_array_foreach((json_t *)list, i, x)
    {
        if (json_is_integer(x) && json_is_integer(v) &&
            json_integer_value(x) == json_integer_value(v))
            return 1;
        if (json_is_string(x) && json_is_string(v) && json_equal(x, (json_t *)v))
            return 1;
    }
    return 0;
}
