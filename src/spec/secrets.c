/* secrets.c - where a workflow definition may name a secret (see secrets.h,
 * DESIGN: Placement): pure rules over the definition's JSON, used when a workflow is
 * compiled. */
#include "spec/secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ids.h"
#include "util/xmalloc.h"

int secrets_name_valid(const char *name)
{
    return name && ids_name_valid(name, SECRETS_NAME_MAX, NULL);
}

/* tpl is scanned up to its first NUL although templates render by length: a template
 * never holds a NUL, because definitions are parsed without JSON_ALLOW_NUL (PUT in
 * api/defs.c, load in wfload.c), so "\u0000" is refused as InvalidJson
 * (tests/api/test_37 test_14). Should that ever change, this scan must take the length,
 * or a placeholder after a NUL would escape the placement rules. */
int secrets_scan(const char *tpl, json_t *names)
{
    int count = 0, bad = 0;
    const char *p = tpl;
    while (p && (p = strstr(p, "{{")) != NULL) {
        const char *a = p + 2, *e = strstr(a, "}}");
        if (!e)
            break; /* template_check() reports it */
        while (a < e && (*a == ' ' || *a == '\t' || *a == '\r' || *a == '\n'))
            a++;
        const char *z = e;
        while (z > a && (z[-1] == ' ' || z[-1] == '\t' || z[-1] == '\r' || z[-1] == '\n'))
            z--;
        size_t n = (size_t)(z - a);
        if (n >= 7 && memcmp(a, "secrets", 7) == 0 && (n == 7 || a[7] == '.')) {
            count++;
            char name[SECRETS_NAME_MAX + 2];
            size_t nl = n > 8 ? n - 8 : 0;
            if (n == 7 || nl == 0 || nl > SECRETS_NAME_MAX) {
                bad = 1;
            } else {
                memcpy(name, a + 8, nl);
                name[nl] = '\0';
                if (!secrets_name_valid(name))
                    bad = 1;
                else if (names)
                    json_array_append_new(names, json_string(name));
            }
        }
        p = e + 2;
    }
    return bad ? -1 : count;
}

struct chk {
    char *err;
    size_t errlen;
    char *target;
    size_t targetlen;
};

static int walk(struct chk *c, json_t *v, const char *where, int allowed)
{
    char sub[512];
    if (json_is_string(v)) {
        int r = secrets_scan(json_string_value(v), NULL);
        if (r == 0)
            return 0;
        snprintf(c->target, c->targetlen, "%s", where);
        if (r < 0)
            snprintf(c->err, c->errlen,
                     "only single secrets can be named, as {{secrets.NAME}} (NAME: 1 to 64 "
                     "characters of A-Z a-z 0-9 _ -); {{secrets}} is never allowed");
        else if (!allowed)
            snprintf(c->err, c->errlen,
                     "a secret may appear only in an http step's header values, or in its body "
                     "when the step sets \"secretBody\": true; never in a URL, map or message");
        else
            return 0;
        return -1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            snprintf(sub, sizeof sub, "%s%s%s", where, where[0] ? "." : "", k);
            if (walk(c, e, sub, allowed) < 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            snprintf(sub, sizeof sub, "%s[%zu]", where, i);
            if (walk(c, e, sub, allowed) < 0)
                return -1;
        }
    }
    return 0;
}

int secrets_check_definition(json_t *def, char *err, size_t errlen, char *target, size_t targetlen)
{
    struct chk c = {err, errlen, target, targetlen};
    char where[160];
    const char *k;
    json_t *v;
    if (!json_is_object(def))
        return 0;
    json_object_foreach(def, k, v)
    {
        if (strcmp(k, "steps") || !json_is_array(v)) {
            if (walk(&c, v, k, 0) < 0)
                return -1;
            continue;
        }
        size_t i;
        json_t *step;
        json_array_foreach(v, i, step)
        {
            if (!json_is_object(step)) {
                snprintf(where, sizeof where, "steps[%zu]", i);
                if (walk(&c, step, where, 0) < 0)
                    return -1;
                continue;
            }
            json_t *type = json_object_get(step, "type");
            int http = json_is_string(type) && !strcmp(json_string_value(type), "http");
            int secret_body = json_is_true(json_object_get(step, "secretBody"));
            const char *sk;
            json_t *sv;
            json_object_foreach(step, sk, sv)
            {
                int allowed =
                    http && (!strcmp(sk, "headers") || (!strcmp(sk, "body") && secret_body));
                snprintf(where, sizeof where, "steps[%zu].%s", i, sk);
                if (walk(&c, sv, where, allowed) < 0)
                    return -1;
            }
        }
    }
    return 0;
}
