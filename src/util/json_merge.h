/* json_merge.h - RFC 7396 JSON merge patch on jansson values.
 *
 * Used by the store to apply PATCH operations to documents. Pure function on
 * jansson trees; thread-safe as long as the inputs are not mutated concurrently. */
#ifndef SLUICE_JSON_MERGE_H
#define SLUICE_JSON_MERGE_H

#include <jansson.h>

/* Returns target with patch merged in, per RFC 7396: a non-object patch replaces the
 * target; an object patch sets its members recursively and removes members whose
 * value is null. target (may be NULL = absent) and patch are borrowed and not
 * modified; the result is a new reference (it may share unchanged subtrees with the
 * inputs, so treat it as read-only or json_deep_copy() it). NULL only when jansson
 * fails to allocate; callers treat that as an internal error. */
json_t *json_merge_patch(json_t *target, json_t *patch);

#endif
