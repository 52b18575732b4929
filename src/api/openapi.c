/* openapi.c - GET /openapi.json: the OpenAPI 3.1 description of this API.
 *
 * The document's source is docs/openapi.json. The build embeds it as a byte array
 * (scripts/embed.sh writes $(BUILD)/gen/openapi_json.c), so a binary serves the
 * description of the routes it was built with, and needs no file at run time. The
 * black-box suite validates the document and checks every response it sees against
 * it (tests/api/test_24_openapi.py, test_zz_openapi_drift.py). */
#include <string.h>

#include "api/api.h"

/* Defined in the generated file: the bytes (NUL-terminated, len not counting it) and
 * a strong ETag derived from their SHA-256, quoted. */
extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;
extern const char openapi_json_etag[];

/* Nonzero when If-None-Match value h names etag, or is "*". A weak W/ form of our
 * tag matches too (RFC 9110: If-None-Match uses the weak comparison). */
static int etag_matches(const char *h, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = h; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (strncmp(p, etag, n) == 0 &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

void api_openapi(struct request *req)
{
    reply_header(req, "ETag", openapi_json_etag);
    reply_header(req, "Cache-Control", "no-cache"); /* revalidate: a new build changes it */
    const char *inm = req_header(req, "If-None-Match");
    if (inm && etag_matches(inm, openapi_json_etag)) {
        reply_empty(req, 304);
        return;
    }
    reply_json(req, 200, (const char *)openapi_json, openapi_json_len);
}
