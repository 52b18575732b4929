/* auth.c - API key authentication: "Authorization: Bearer slk_..." -> tenant.
 * Only the SHA-256 of a key is stored, so the lookup is by hash. */
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "util/errors.h"
#include "util/ids.h"

int api_authenticate(struct request *req)
{
    struct api *api = req_app(req);
    const char *h = req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
        reply_header(req, "WWW-Authenticate", "Bearer");
        reply_error(req, SLUICE_E_UNAUTHORIZED, NULL, "missing API key: send Authorization: Bearer <key>");
        return -1;
    }
    const char *key = h + 7;
    size_t n = strlen(key);
    char hash[65], tenant[STORE_NAME_MAX];
    ids_sha256_hex(key, n, hash);
    int rc = n > 200 ? 0 : store_key_lookup(api->st, hash, tenant);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return -1;
    }
    if (rc == 0) {
        reply_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        reply_error(req, SLUICE_E_UNAUTHORIZED, NULL, "invalid or revoked API key");
        return -1;
    }
    req_set_tenant(req, tenant);
    return 0;
}
