/* secrets.c - /v1/secrets: a tenant's own secrets for {{secrets.NAME}} in its http
 * header templates (engine/secrets.h). Write-only: PUT takes the value, every answer
 * shows the name and times only. Tenant-scoped like every resource: another tenant's
 * name is simply not found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "engine/secrets.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/url.h"

#define SECRET_VALUE_MIN 8 /* shorter values would mask unrelated text (util/secmask.h) */

static int check_name(struct request *req)
{
    if (secrets_name_valid(req_param(req, "name")))
        return 0;
    reply_error(req, SLUICE_E_INVALID_PARAMETER, "name",
                "secret names are 1 to 64 characters of A-Z a-z 0-9 _ -");
    return -1;
}

/* {"name","createdAt","updatedAt"}: never the value. */
static void render_secret(struct buf *b, const struct store_secret *s)
{
    char ts[25];
    buf_puts(b, "{\"name\":");
    buf_json_str(b, s->name, strlen(s->name));
    buf_printf(b, ",\"createdAt\":\"%s\"", clock_fmt_ms(s->created_at, ts));
    buf_printf(b, ",\"updatedAt\":\"%s\"}", clock_fmt_ms(s->updated_at, ts));
}

static void reply_secret(struct request *req, int status, const struct store_secret *s)
{
    struct buf b = BUF_INIT;
    render_secret(&b, s);
    reply_buf(req, status, "application/json", &b);
    buf_release(&b);
}

void api_secrets_put(struct request *req)
{
    if (check_name(req) < 0)
        return;
    size_t len;
    const char *body = req_body(req, &len);
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        reply_errorf(req, SLUICE_E_INVALID_JSON, NULL, "request body is not valid JSON: %s",
                     je.text);
        return;
    }
    json_t *v = json_object_get(j, "value");
    const char *k;
    json_t *x;
    if (json_is_object(j)) {
        json_object_foreach(j, k, x)
        {
            if (strcmp(k, "value") == 0)
                continue;
            reply_errorf(req, SLUICE_E_INVALID_FIELD, k, "unknown field '%.64s'", k);
            json_decref(j);
            return;
        }
    }
    size_t vl = json_string_length(v);
    if (!json_is_string(v) || vl < SECRET_VALUE_MIN || vl > SECRETS_VALUE_MAX ||
        strlen(json_string_value(v)) != vl || strpbrk(json_string_value(v), "\r\n")) {
        json_decref(j);
        reply_errorf(req, SLUICE_E_INVALID_FIELD, "value",
                     "value must be a string of %d to %d bytes without NUL, CR or LF",
                     SECRET_VALUE_MIN, SECRETS_VALUE_MAX);
        return;
    }
    struct store_secret s;
    memset(&s, 0, sizeof s);
    int rc = store_secret_put(api_of(req)->st, req_tenant(req), req_param(req, "name"),
                              json_string_value(v), &s);
    json_decref(j);
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else
        reply_secret(req, rc == 1 ? 201 : 200, &s);
    store_secret_release(&s);
}

void api_secrets_get(struct request *req)
{
    if (check_name(req) < 0)
        return;
    struct store_secret s;
    memset(&s, 0, sizeof s);
    int rc = store_secret_get(api_of(req)->st, req_tenant(req), req_param(req, "name"), &s);
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else if (rc == 0)
        reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no secret '%.64s'", req_param(req, "name"));
    else
        reply_secret(req, 200, &s);
    store_secret_release(&s);
}

void api_secrets_delete(struct request *req)
{
    if (check_name(req) < 0)
        return;
    int rc = store_secret_delete(api_of(req)->st, req_tenant(req), req_param(req, "name"));
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else if (rc == 0)
        reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no secret '%.64s'", req_param(req, "name"));
    else
        reply_empty(req, 204);
}

static void page_secret(struct buf *b, const void *e, struct request *req)
{
    (void)req;
    render_secret(b, e);
}

static void cursor_secret(struct buf *q, const void *e)
{
    buf_puts(q, "after=");
    url_encode(q, ((const struct store_secret *)e)->name);
}

/* {"value": [{"name","createdAt","updatedAt"}...], "nextLink"}, by name. */
void api_secrets_list(struct request *req)
{
    int64_t limit;
    if (api_query_int(req, "limit", 100, 1, 1000, &limit) < 0)
        return;
    struct store_secret *ss = NULL;
    size_t n = 0;
    int rc = store_secret_list(api_of(req)->st, req_tenant(req), req_query(req, "after"),
                               (size_t)limit + 1, &ss, &n);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    api_reply_page(req, ss, n, sizeof *ss, limit, page_secret, cursor_secret, NULL);
    store_secrets_free(ss, n);
}
