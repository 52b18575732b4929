/* ui.c - the web dashboard's static files under /ui/ (no authentication).
 *
 * The files come from ui/ at build time (scripts/ui-assets.sh -> api/ui_assets.h), so
 * the dashboard works offline and always matches the binary's API. The page itself
 * asks the user for an API key and calls the public /v1 API with it; nothing here
 * knows tenants. Every answer carries a strict Content-Security-Policy (scripts,
 * styles and fetches from this origin only, no inline code, no framing), a strong
 * ETag and "Cache-Control: no-cache", so a browser revalidates each load and gets
 * 304 while the binary is unchanged. */
#include <string.h>

#include "api/api.h"
#include "api/params.h"
#include "api/ui_assets.h"
#include "util/errors.h"

#define UI_CSP                                                                                     \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const struct ui_asset *find_asset(const char *name)
{
    for (size_t i = 0; i < ui_nassets; i++)
        if (strcmp(ui_assets[i].name, name) == 0)
            return &ui_assets[i];
    return NULL;
}

static void reply_asset(struct request *req, const struct ui_asset *a)
{
    reply_header(req, "ETag", a->etag);
    reply_header(req, "Cache-Control", "no-cache");
    reply_header(req, "Content-Security-Policy", UI_CSP);
    reply_header(req, "X-Content-Type-Options", "nosniff");
    reply_header(req, "Referrer-Policy", "no-referrer");
    reply_header(req, "Cross-Origin-Opener-Policy", "same-origin");
    reply_header(req, "Cross-Origin-Resource-Policy", "same-origin");
    const char *inm = req_header(req, "If-None-Match");
    if (inm && api_etag_listed(inm, a->etag)) {
        reply_not_modified(req, a->content_type, a->len);
        return;
    }
    struct buf b = BUF_INIT;
    buf_append(&b, a->data, a->len);
    reply_buf(req, 200, a->content_type, &b);
    buf_release(&b);
}

void api_ui_redirect(struct request *req)
{
    reply_header(req, "Location", "/ui/");
    reply_empty(req, 301);
}

void api_ui_index(struct request *req)
{
    const struct ui_asset *a = find_asset("index.html");
    if (!a) {
        reply_error(req, SLUICE_E_NOT_FOUND, NULL, "this build has no dashboard");
        return;
    }
    reply_asset(req, a);
}

void api_ui_asset(struct request *req)
{
    const struct ui_asset *a = find_asset(req_param(req, "asset"));
    if (!a) {
        reply_header(req, "X-Content-Type-Options", "nosniff");
        reply_errorf(req, SLUICE_E_NOT_FOUND, "asset", "no dashboard file '%.80s'",
                     req_param(req, "asset"));
        return;
    }
    reply_asset(req, a);
}
