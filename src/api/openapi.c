/* openapi.c - GET /openapi.json: the OpenAPI 3.1 description of this API.
 *
 * The document's source is docs/openapi.json. The build embeds it as a byte array
 * (scripts/embed.sh writes $(BUILD)/gen/openapi_json.c), so a binary serves the
 * description of the routes it was built with, and needs no file at run time. The
 * black-box suite validates the document and checks every response it sees against
 * it (tests/api/test_24_openapi.py, test_zz_openapi_drift.py). */
#include <string.h>

#include "api/api.h"
#include "api/params.h"

/* Defined in the generated file: the bytes (NUL-terminated, len not counting it) and
 * a strong ETag derived from their SHA-256, quoted. */
extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;
extern const char openapi_json_etag[];

void api_openapi(struct request *req)
{
    reply_header(req, "ETag", openapi_json_etag);
    reply_header(req, "Cache-Control", "no-cache"); /* revalidate: a new build changes it */
    const char *inm = req_header(req, "If-None-Match");
    if (inm && api_etag_listed(inm, openapi_json_etag)) {
        reply_not_modified(req, "application/json", openapi_json_len);
        return;
    }
    reply_json(req, 200, (const char *)openapi_json, openapi_json_len);
}
