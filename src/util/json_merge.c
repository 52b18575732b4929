/* json_merge.c - RFC 7396 merge patch; see json_merge.h.
 *
 * Follows the RFC's pseudo-code: objects merge member by member, null deletes, any
 * other value replaces. The target is never modified: an object result starts as a
 * shallow copy of the target, and members are replaced by freshly merged values. */
#include "util/json_merge.h"

json_t *json_merge_patch(json_t *target, json_t *patch)
{
    const char *key;
    size_t key_len;
    json_t *value;
    json_t *res;

    if (!json_is_object(patch))
        return json_incref(patch);
    res = json_is_object(target) ? json_copy(target) : json_object();
    if (!res)
        return NULL;
    json_object_keylen_foreach(patch, key, key_len, value)
    {
        if (json_is_null(value)) {
            json_object_deln(res, key, key_len);
            continue;
        }
        json_t *merged = json_merge_patch(json_object_getn(res, key, key_len), value);
        if (!merged || json_object_setn_new(res, key, key_len, merged) != 0) {
            json_decref(res);
            return NULL;
        }
    }
    return res;
}
