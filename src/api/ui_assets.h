/* ui_assets.h - the dashboard's files, compiled into the binary.
 *
 * The table is generated at build time by scripts/ui-assets.sh from the files in ui/
 * (build/<rel|san>/gen/ui_assets.c); api/ui.c serves it under /ui/. Everything here
 * is static, read-only data: safe to read from any thread. */
#ifndef SLUICE_UI_ASSETS_H
#define SLUICE_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
    const char *name;         /* file name in ui/ ("app.js"); NULL ends the table */
    const char *content_type; /* from the extension, with charset for text */
    const char *etag;         /* quoted strong ETag: a prefix of the file's SHA-256 */
    const unsigned char *data;
    size_t len;
};

/* ui_assets[0..ui_nassets) followed by an all-zero row. */
extern const struct ui_asset ui_assets[];
extern const size_t ui_nassets;

#endif
