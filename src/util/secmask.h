/* secmask.h - masking every rendering of secret values in text sluice writes.
 *
 * A mask holds the secret values visible to one run (see engine/secrets.h) and, for
 * each, the "needles" its value can turn into on the way out:
 *   - raw bytes;
 *   - percent-encoded, every byte outside A-Z a-z 0-9 - . _ ~ as %XX, with upper- and
 *     with lower-case hex, each also with '+' for a space (form encoding);
 *   - JSON-escaped as jansson writes a string (plain, with "\/" for '/', with \uXXXX
 *     for non-ASCII in upper- and lower-case hex) and as buf_json_str() writes it;
 *   - base64, standard and URL-safe alphabets, of the value itself (with and without
 *     padding) and, for a value inside a longer encoded text such as a Basic auth
 *     header "user:secret", the run of whole 3-byte groups at each of the 3 possible
 *     alignments.
 * Every occurrence of a needle becomes "***". What is NOT covered, documented in
 * docs/operating.md: the 1-2 base64 characters at each end of an aligned run (they mix
 * secret bits with neighbouring bytes, so cannot be told apart in general), values
 * shorter than SECMASK_MIN_LEN bytes (too short to mask without destroying unrelated
 * text), and encodings other than those above (hex, double encoding, compression).
 *
 * JSON documents (events, results) are masked string by string (secmask_json), so a
 * value that looks like JSON punctuation cannot break the document's structure.
 *
 * A mask is built by one thread and then only read: apply functions may run on
 * several threads at once. */
#ifndef SLUICE_UTIL_SECMASK_H
#define SLUICE_UTIL_SECMASK_H

#include <stddef.h>

#define SECMASK_MIN_LEN 4 /* shorter values are not masked (and are refused where we can) */
#define SECMASK_TEXT "***"

struct secmask;

/* An empty mask (never NULL). Free with secmask_free(). */
struct secmask *secmask_new(void);
void secmask_free(struct secmask *m);
/* Adds value's needles (a copy is kept; the same value twice is added once). Values
 * shorter than SECMASK_MIN_LEN bytes are ignored. */
void secmask_add(struct secmask *m, const char *value);
/* Nonzero when the mask holds no needle (apply functions then copy). */
int secmask_empty(const struct secmask *m);
/* Nonzero when text (n bytes) holds a needle. */
int secmask_hit(const struct secmask *m, const char *text, size_t n);
/* text with every needle replaced by "***". Returns a new heap string (caller frees
 * with free()); NULL when text is NULL. */
char *secmask_text(const struct secmask *m, const char *text);
/* Like secmask_text for a JSON document: each string (and key) is masked on its own and
 * the document written again compactly; text that is not JSON is masked as text.
 * Returns a new heap string (caller frees); NULL when text is NULL. */
char *secmask_json(const struct secmask *m, const char *text);
/* Replaces, in place, every needle in the NUL-terminated string s (of capacity cap
 * bytes) by "***" (truncating if needed: the result is never longer than cap - 1). For
 * fixed buffers such as libcurl's error text. */
void secmask_inplace(const struct secmask *m, char *s, size_t cap);

#endif
