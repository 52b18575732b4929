/* template.h - "{{ path }}" string templates over a step context.
 *
 * A template is text with placeholders "{{ path }}": the path (see lang/path.h) is
 * looked up in a context object such as
 *   {"data": ..., "ref": "...", "job": {...}, "index": 3, "steps": {"push": {...}}}
 * Whitespace (space, tab, CR, LF) around the path inside the braces is ignored.
 * There is no escape: every "{{" opens a placeholder that must be closed by "}}"
 * before the next "{{", and a "}}" outside a placeholder is an error (single '{' and
 * '}' are plain text). A value is rendered as:
 *   string               its characters, as they are;
 *   number/boolean/null  its JSON text ("12", "19.99", "true", "null"); reals use the
 *                        shortest text that reads back to the same double, and always
 *                        carry a '.' or exponent ("5.0");
 *   object/array         compact JSON text ({"a":1,"b":[true]}).
 * With url_encode, every rendered value (never the literal text around it) is
 * percent-encoded, keeping only RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
 * A placeholder whose path is absent is an error: "data.title is missing".
 *
 * All functions are reentrant and keep no state; the template and the context are
 * only read, so both may be shared between threads that do not modify them. */
#ifndef SLUICE_STEPS_TEMPLATE_H
#define SLUICE_STEPS_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "util/buf.h"

/* Checks the syntax of tpl: balanced "{{ }}" and a valid path in each placeholder.
 * err, errlen: [out] on error, e.g. "unclosed '{{' at offset 6" or
 *   "bad placeholder at offset 0: path has an empty segment at offset 4"
 *   (err may be NULL or errlen 0).
 * Returns 0 when valid, -1 when not. */
int template_check(const char *tpl, char *err, size_t errlen);

/* Checks every string inside the JSON value tpl (recursively through objects and
 * arrays; keys are not templates) with template_check().
 * where, wherelen: [out] on error, the location of the bad string inside tpl, e.g.
 *   "headers.Authorization" or "items[2]"; "" when tpl itself is the string.
 * Returns 0 when valid, -1 when not (err as for template_check()). */
int template_check_value(json_t *tpl, char *err, size_t errlen, char *where, size_t wherelen);

/* Renders tpl against ctx (borrowed, any JSON value; paths start at it) and appends
 * the result to out.
 * url_encode: nonzero to percent-encode the rendered values (for URL templates).
 * out: [out] receives the rendered text; on error it is truncated back to its length
 *   at the call, so nothing partial is left behind.
 * Returns 0 on success, -1 on a syntax error or a missing path (message in err). */
int template_render(const char *tpl, json_t *ctx, int url_encode, struct buf *out, char *err,
                    size_t errlen);

/* template_render() within a byte budget, so a template that repeats a large value
 * ("{{data.a}}{{data.a}}...") fails before it builds anything large.
 * budget: [in/out] bytes the output may still take (NULL: unbounded); every piece is
 *   charged before it is appended, and on success *budget drops by what was appended
 *   (on error it is unchanged).
 * Returns 0, -SLUICE_E_TEMPLATE_ERROR (syntax, missing path; message in err) or
 * -SLUICE_E_ITEM_TOO_LARGE when the output would pass the budget (err: "the value of
 * data.a would pass the size limit (N bytes left)"); out as for template_render(). */
int template_render_within(const char *tpl, json_t *ctx, int url_encode, size_t *budget,
                           struct buf *out, char *err, size_t errlen);

/* Evaluates the JSON value tpl (borrowed, not modified; its reference count is not
 * touched either, so a compiled step may share it between threads) against ctx:
 *  - a string that is exactly one placeholder, "{{data.price}}" (no text around the
 *    braces), yields a deep copy of the value at that path, keeping its JSON type;
 *  - any other string is rendered with template_render() into a new string;
 *  - objects and arrays are evaluated member by member into new containers (keys are
 *    kept as they are);
 *  - numbers, booleans and null are copied.
 * err, errlen: [out] on error; a failure below the top level is prefixed with its
 *   location in tpl: "title: data.title is missing", "tags[1]: ...".
 * Returns a new reference (caller owns it) or NULL on error. */
json_t *template_eval(json_t *tpl, json_t *ctx, char *err, size_t errlen);

/* template_eval() within a byte budget (as for template_render_within(): NULL is
 * unbounded; on success *budget drops by the result's compact JSON length as
 * template_put_json() writes it: rendered strings are charged escaped). A single
 * placeholder's value is measured before it is copied, so nothing much larger than the
 * budget is ever allocated.
 * out: [out] a new reference on success (caller owns it), NULL on error.
 * Returns 0, -SLUICE_E_TEMPLATE_ERROR or -SLUICE_E_ITEM_TOO_LARGE (err prefixed with
 * the location in tpl, as for template_eval()). */
int template_eval_within(json_t *tpl, json_t *ctx, size_t *budget, json_t **out, char *err,
                         size_t errlen);

/* jsonw_len() (util/jsonw.h): the length of v's compact JSON text as
 * template_put_json() writes it, or cap + 1 as soon as it is known to pass cap. */
size_t template_json_len(json_t *v, size_t cap);

/* jsonw_put() (util/jsonw.h): appends v (borrowed) to b as compact JSON text, the way
 * templates render numbers, booleans, null, objects and arrays (strings are quoted and
 * escaped here), and the way the pipeline writes every JSON text it sends or keeps
 * (jsonw_dump()), so that what template_json_len() measured is what is written. */
void template_put_json(struct buf *b, json_t *v);

#endif
