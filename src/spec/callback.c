/* callback.c - parsing the completion callback of a submit: the JSON envelope's "callback"
 * object, or an NDJSON submit's callbackUrl and callbackEvents query parameters; see
 * callback.h. Pure functions of their input (no store, no outbound), kept apart from
 * the delivery thread in engine/callbacks.c so that tests/fuzz/fuzz_request.c links
 * them alone. */
#include "spec/callback.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/errors.h"
#include "util/xmalloc.h"

static const struct {
    const char *name;
    int bit;
} event_names[] = {
    {"job.completed", STORE_CB_COMPLETED},
    {"job.failed", STORE_CB_FAILED},
    {"job.canceled", STORE_CB_CANCELED},
};

static int event_bit(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof event_names / sizeof event_names[0]; i++)
        if (strlen(event_names[i].name) == n && memcmp(event_names[i].name, s, n) == 0)
            return event_names[i].bit;
    return 0;
}

int callback_url_check(const char *url, char *msg, size_t msglen)
{
    size_t n = url ? strlen(url) : 0;
    const char *host;
    if (n == 0 || n > CALLBACK_URL_MAX) {
        snprintf(msg, msglen, "the callback url must be 1 to %d bytes", CALLBACK_URL_MAX);
        return -SLUICE_E_INVALID_FIELD;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f) {
            snprintf(msg, msglen, "the callback url must be printable ASCII without spaces");
            return -SLUICE_E_INVALID_FIELD;
        }
    }
    if (strncasecmp(url, "https://", 8) == 0)
        host = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        host = url + 7;
    else {
        snprintf(msg, msglen, "the callback url must be an absolute http:// or https:// URL");
        return -SLUICE_E_INVALID_FIELD;
    }
    if (*host == '\0' || *host == '/' || *host == '?' || *host == '#' || *host == ':' ||
        *host == '@') {
        snprintf(msg, msglen, "the callback url has no host");
        return -SLUICE_E_INVALID_FIELD;
    }
    return 0;
}

int callback_events_parse(const char *list, int *events, char *msg, size_t msglen)
{
    int bits = 0;
    const char *p = list ? list : "";
    for (;;) {
        size_t n = strcspn(p, ",");
        int b = event_bit(p, n);
        if (!b) {
            snprintf(msg, msglen,
                     "unknown callback event '%.*s': use job.completed, job.failed, job.canceled",
                     (int)(n > 60 ? 60 : n), p);
            return -SLUICE_E_INVALID_FIELD;
        }
        bits |= b;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    *events = bits;
    return 0;
}

static const char *const format_names[] = {
    [STORE_CB_FORMAT_DEFAULT] = "stripe",
    [STORE_CB_FORMAT_STRIPE] = "stripe",
    [STORE_CB_FORMAT_STANDARD] = "standard-webhooks",
};

int callback_format_parse(const char *s, size_t n, int *format, char *msg, size_t msglen)
{
    for (int f = STORE_CB_FORMAT_STRIPE; f <= STORE_CB_FORMAT_MAX; f++) {
        if (s && strlen(format_names[f]) == n && memcmp(format_names[f], s, n) == 0) {
            *format = f;
            return 0;
        }
    }
    snprintf(msg, msglen, "the callback format must be \"stripe\" or \"standard-webhooks\"");
    return -SLUICE_E_INVALID_FIELD;
}

const char *callback_format_name(int format)
{
    return format >= STORE_CB_FORMAT_DEFAULT && format <= STORE_CB_FORMAT_MAX ? format_names[format]
                                                                              : NULL;
}

int callback_spec_parse(const char *json, size_t len, char **url, int *events, int *format,
                        char *target, size_t targetlen, char *msg, size_t msglen)
{
    json_error_t jerr;
    const char *key;
    json_t *v;
    int rc = -SLUICE_E_INVALID_FIELD;
    json_t *o = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    *url = NULL;
    *events = STORE_CB_ALL;
    *format = STORE_CB_FORMAT_DEFAULT;
    snprintf(target, targetlen, "callback");
    if (!json_is_object(o)) {
        snprintf(msg, msglen, "\"callback\" must be an object");
        goto out;
    }
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "url") != 0 && strcmp(key, "events") != 0 && strcmp(key, "format") != 0) {
            snprintf(target, targetlen, "callback.%.40s", key);
            snprintf(msg, msglen, "unknown field");
            goto out;
        }
    }
    v = json_object_get(o, "url");
    snprintf(target, targetlen, "callback.url");
    if (!v) {
        snprintf(msg, msglen, "missing field \"url\"");
        goto out;
    }
    if (!json_is_string(v) || memchr(json_string_value(v), '\0', json_string_length(v))) {
        snprintf(msg, msglen, "\"url\" must be a string");
        goto out;
    }
    if ((rc = callback_url_check(json_string_value(v), msg, msglen)) < 0)
        goto out;
    rc = -SLUICE_E_INVALID_FIELD;
    v = json_object_get(o, "events");
    if (v) {
        size_t i;
        json_t *e;
        int bits = 0;
        snprintf(target, targetlen, "callback.events");
        if (!json_is_array(v) || json_array_size(v) == 0) {
            snprintf(msg, msglen, "\"events\" must be a non-empty array of event names");
            goto out;
        }
        json_array_foreach(v, i, e)
        {
            int b = json_is_string(e) ? event_bit(json_string_value(e), json_string_length(e)) : 0;
            if (!b) {
                snprintf(target, targetlen, "callback.events[%zu]", i);
                snprintf(msg, msglen, "must be one of job.completed, job.failed, job.canceled");
                goto out;
            }
            bits |= b;
        }
        *events = bits;
    }
    v = json_object_get(o, "format");
    if (v) {
        snprintf(target, targetlen, "callback.format");
        if (!json_is_string(v)) {
            snprintf(msg, msglen, "\"format\" must be a string");
            goto out;
        }
        if ((rc = callback_format_parse(json_string_value(v), json_string_length(v), format, msg,
                                        msglen)) < 0)
            goto out;
        rc = -SLUICE_E_INVALID_FIELD;
    }
    *url = xstrdup(json_string_value(json_object_get(o, "url")));
    target[0] = '\0';
    rc = 0;
out:
    json_decref(o);
    return rc;
}
