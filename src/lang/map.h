/* map.h - the `map` step: reshapes an item's data with a list of operations.
 *
 * Spec (the step definition minus "name" and "type"), members other than "ops" are
 * rejected:
 *   {"ops": [
 *     {"op": "set",    "path": "title", "value": "{{data.title}} ({{data.attributes.color}})"},
 *     {"op": "copy",   "from": "price.amount", "path": "priceCents"},
 *     {"op": "rename", "from": "sku", "path": "id"},
 *     {"op": "remove", "path": "description"},
 *     {"op": "convert", "path": "price", "to": "number"}
 *   ]}
 *  - "path" and "from" are paths (lang/path.h) relative to the item's data;
 *  - set: "value" is any JSON, evaluated with template_eval() against the whole step
 *    context ({"data", "ref", "job", "steps", ...}), so "{{data.price}}" keeps the
 *    price's type and "{{ref}}-x" renders a string; missing intermediate objects of
 *    "path" are created;
 *  - copy: deep-copies the value at "from" to "path"; "from" must exist;
 *  - rename: moves the value at "from" to "path"; "from" must exist;
 *  - remove: deletes "path"; a missing path is not an error.
 *  - convert: replaces the string at "path" ("path" must exist) by the value it spells,
 *    "to" being one of
 *      "number"   a JSON number's spelling ("12.5", "-3", "1e6"; not "12,5", "+1",
 *                 "007", "NaN"); an integer that fits int64 stays an integer
 *      "integer"  a JSON integer's spelling that fits int64 ("12", not "12.0")
 *      "boolean"  "true" or "false" in any case, "1" or "0" (not "yes"/"no": their
 *                 meaning depends on the language)
 *    Spaces and tabs around the text are ignored; an empty string (or one of spaces
 *    only) becomes null. null stays null, and a value of the type already stays as it
 *    is (an integral real like 12.0 counts as an integer). Anything else fails the
 *    item, naming the path and the value: "ops[1] (convert): price: \"12,5\" is not a
 *    number (...)". Meant for CSV items, whose values are all strings.
 * Ops run in order and each sees the result of the ones before it ("{{data.id}}" after
 * a rename sees the new member). Members of an op other than those it uses are
 * rejected ("from" on a set is a mistake worth reporting).
 *
 * A compiled struct map is immutable; map_apply() may run on it from many threads at
 * once, each on its own context. */
#ifndef SLUICE_STEPS_MAP_H
#define SLUICE_STEPS_MAP_H

#include <jansson.h>
#include <stddef.h>

struct map;

/* Ops per map step, refused beyond at definition time: every op may re-measure the
 * document (map_apply_within), so the count bounds an item's work. */
#define MAP_MAX_OPS 64

/* Compiles spec (borrowed; the result keeps its own copies).
 * out: [out] the compiled step on success, NULL on error; free with map_free().
 * err, errlen: [out] on error, what is wrong, e.g. "path has an empty segment at
 *   offset 2" or "unknown op \"move\" (expected set, copy, rename, remove or convert)".
 * where, wherelen: [out] on error, its location in spec, e.g. "ops[2].path",
 *   "ops[0].value.title" (a bad template inside a set value), "ops"; "" for the spec
 *   itself. Either message buffer may be NULL (or its length 0).
 * Returns 0 on success, -1 when the spec is invalid. */
int map_compile(json_t *spec, struct map **out, char *err, size_t errlen, char *where,
                size_t wherelen);

/* Applies m to ctx (an object with "data", borrowed; its "data" member is replaced).
 * The ops work on a copy of data that replaces ctx.data only when every op succeeded,
 * so on error ctx is exactly as it was.
 * err, errlen: [out] on error, e.g. "ops[1] (copy): price.amount is missing" or
 *   "data is not an object".
 * Returns 0 on success, -1 on error (data missing or not an object, a missing "from",
 * a template error, a path that cannot be set). */
int map_apply(const struct map *m, json_t *ctx, char *err, size_t errlen);

/* map_apply() with the data's size bounded: the data (as compact JSON text) may never
 * pass max_bytes, and nothing much larger is built on the way (set values are
 * evaluated within what is left, copies measured before they are made).
 * where, wherelen: [out] on an op's error, the op's member at fault: "ops[3].value",
 *   "ops[0].from", "ops[2].path" ("" for errors not about one op; may be NULL).
 * Returns 0, -SLUICE_E_ITEM_TOO_LARGE (the data would pass max_bytes) or
 * -SLUICE_E_MAP_FAILED (any other error); ctx as for map_apply(). */
int map_apply_within(const struct map *m, json_t *ctx, size_t max_bytes, char *where,
                     size_t wherelen, char *err, size_t errlen);

/* Frees a compiled map; NULL is fine. */
void map_free(struct map *m);

#endif
