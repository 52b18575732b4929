/* cursor.h - opaque page cursors: a position in a list sealed so that clients can
 * neither read it nor forge one.
 *
 * Lists whose position is a server-wide sequence (the jobs of all tenants share one)
 * must not show it: its gaps would tell a tenant how many jobs the others make. A
 * cursor is one AES-128 block, (position, a tag of whose list it is), encrypted with
 * a server key and written in base64url (22 characters). Opening checks the tag, so
 * a cursor of another tenant, or an edited one, is refused rather than read.
 * The key lives in the store (cursor_key_load) so that every node and every restart
 * reads the cursors of the others. */
#ifndef SLUICE_CURSOR_H
#define SLUICE_CURSOR_H

#include <stdint.h>

#define CURSOR_KEY_BYTES 16
#define CURSOR_TEXT_MAX 23 /* 22 characters and the NUL */

/* Seals pos (>= 0) for the list named by tag (e.g. the tenant) into out. */
void cursor_seal(const unsigned char key[CURSOR_KEY_BYTES], const char *tag, int64_t pos,
                 char out[CURSOR_TEXT_MAX]);
/* Opens text sealed by cursor_seal with the same key and tag: 0 and [out] *pos, or -1
 * when text is not such a cursor (malformed, edited, another tag or key). */
int cursor_open(const unsigned char key[CURSOR_KEY_BYTES], const char *tag, const char *text,
                int64_t *pos);
/* A new random key as 32 lowercase hex digits: 0, or -1 (no randomness). */
int cursor_key_new_hex(char hex[2 * CURSOR_KEY_BYTES + 1]);
/* Parses 32 hex digits into key: 0, or -1. */
int cursor_key_parse(const char *hex, unsigned char key[CURSOR_KEY_BYTES]);

#endif
