/* schema.h - the `validate` step: a small, documented subset of JSON Schema.
 *
 * A schema is a JSON object made of these keywords and no others:
 *   type                  "string" | "number" | "integer" | "boolean" | "object" |
 *                         "array" | "null", or a non-empty array of them. "number"
 *                         accepts integers; "integer" accepts reals with no fraction
 *                         (1.0).
 *   required              array of member names (objects only). A missing member is
 *                         reported at its own pointer ("/title", "is required").
 *   properties            object: member name -> schema (applied to present members).
 *   additionalProperties  boolean only; false rejects members not in "properties",
 *                         each reported at its pointer ("is not allowed").
 *   items                 one schema applied to every element (arrays only).
 *   enum                  non-empty array; the instance must equal one element (numbers
 *                         compare by value: 1 equals 1.0).
 *   minimum, maximum      numbers, inclusive (numbers only).
 *   minLength, maxLength  non-negative integers, counted in Unicode code points
 *                         (strings only).
 *   pattern               a POSIX extended regular expression (regcomp REG_EXTENDED),
 *                         NOT ECMA 262: no \d, \w, lookaround or lazy quantifiers; use
 *                         [0-9], [[:alnum:]_] and friends. Matching is unanchored (use ^
 *                         and $) and byte-wise in the process locale ('.' does not match a NUL).
 * Back-references are rejected, a pattern is at most SCHEMA_PATTERN_MAX bytes, and at most
 * SCHEMA_PATTERN_MAX elements once repetitions are expanded as regcomp() does ("x+" is two
 * x, "x{2,50}" fifty, nested ones multiply), which bounds what compiling it costs. title,
 * description, $comment   strings; annotations, ignored. As in JSON Schema, type-specific keywords
 * ignore other types: {"minimum": 0} accepts "abc". Subschemas nest at most SCHEMA_MAX_DEPTH deep.
 *
 * A compiled struct schema is immutable: schema_validate() may run on it from many
 * threads at once (glibc's regexec() is thread-safe on a shared regex_t). */
#ifndef SLUICE_STEPS_SCHEMA_H
#define SLUICE_STEPS_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

#define SCHEMA_MAX_DEPTH 32
#define SCHEMA_PATTERN_MAX 1024

struct schema;

/* Compiles schema (borrowed; nothing of it is kept, the result owns copies).
 * out: [out] the compiled schema on success, NULL on error; free with schema_free().
 * err, errlen: [out] on error, what is wrong, e.g. "must be a number" or
 *   "unknown keyword \"minimun\"".
 * where, wherelen: [out] on error, the dotted location inside the schema, e.g.
 *   "properties.price.minimum", "type.1", "items.required"; "" for the schema itself.
 * Either message buffer may be NULL (or its length 0).
 * Returns 0 on success, -1 when the schema is invalid. */
int schema_compile(json_t *schema, struct schema **out, char *err, size_t errlen, char *where,
                   size_t wherelen);

/* Validates instance (borrowed, not modified) against s, reporting every violation,
 * not just the first. For each one an object is appended to violations (an array, may
 * be NULL to only count):
 *   {"pointer": "/price/amount", "keyword": "minimum", "message": "must be >= 0"}
 * where pointer is an RFC 6901 JSON pointer into the instance ("" = the instance
 * itself; '~' and '/' in names escaped as ~0 and ~1).
 * Returns the number of violations (0 = valid). */
int schema_validate(const struct schema *s, json_t *instance, json_t *violations);

/* Frees a compiled schema; NULL is fine. */
void schema_free(struct schema *s);

#endif
