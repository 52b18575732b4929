/* fuzz-link: src/util */
/* fuzz_merge.c - libFuzzer target for RFC 7396 JSON merge patch (src/util/json_merge.c),
 * what PATCH /v1/collections/{c}/{ref} and the patch step apply to documents.
 *
 * Input: TARGET '\0' PATCH, two JSON texts (jansson, JSON_DECODE_ANY | JSON_ALLOW_NUL);
 * without a NUL the input is the patch and the target is absent. Invalid JSON is rejected
 * early. Invariants (abort() on violation), with R = merge(T, P):
 *  - R is not NULL, and T and P are unchanged (the result may share their subtrees);
 *  - R equals a straightforward recursive reference implementation of RFC 7396 §2;
 *  - idempotence: merge(R, P) == R;
 *  - a non-object P gives P itself; an object P gives an object R in which every
 *    non-null member of P is merge(T[k], P[k]), every null member of P is absent, and
 *    every other member of an object T is kept as it was;
 *  - merge(R, {}) == R for an object R, and merge(T, T) == T for an object T without
 *    null members;
 *  - R serialized (as the store does, JSON_COMPACT) parses back to a value equal to R. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json_merge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
}

/* RFC 7396 section 2, as written, on deep copies. Returns a new reference. */
static json_t *reference(json_t *target, json_t *patch)
{
    if (!json_is_object(patch))
        return json_deep_copy(patch);
    json_t *t = json_is_object(target) ? json_deep_copy(target) : json_object();
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(patch, k, klen, v)
    {
        if (json_is_null(v))
            json_object_deln(t, k, klen);
        else
            json_object_setn_new(t, k, klen, reference(json_object_getn(t, k, klen), v));
    }
    return t;
}

static json_t *merge(json_t *target, json_t *patch)
{
    json_t *r = json_merge_patch(target, patch);
    if (!r)
        fail("json_merge_patch returned NULL");
    return r;
}

static void check_members(json_t *t, json_t *p, json_t *r)
{
    if (!json_is_object(p)) {
        if (!json_equal(r, p))
            fail("a non-object patch does not replace the target");
        return;
    }
    if (!json_is_object(r))
        fail("an object patch gives a non-object");
    json_t *tobj = json_is_object(t) ? t : NULL;
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(p, k, klen, v)
    {
        json_t *got = json_object_getn(r, k, klen);
        if (json_is_null(v)) {
            if (got)
                fail("a null member of the patch is still present");
            continue;
        }
        json_t *want = merge(tobj ? json_object_getn(tobj, k, klen) : NULL, v);
        if (!got || !json_equal(got, want))
            fail("a patched member is not merge(target member, patch member)");
        json_decref(want);
    }
    json_object_keylen_foreach(r, k, klen, v)
    {
        json_t *in_t = tobj ? json_object_getn(tobj, k, klen) : NULL;
        if (json_object_getn(p, k, klen))
            continue;
        if (!in_t)
            fail("the result has a member from neither target nor patch");
        if (!json_equal(v, in_t))
            fail("a member the patch does not name changed");
    }
    if (tobj)
        json_object_keylen_foreach(tobj, k, klen, v)
        {
            if (!json_object_getn(p, k, klen) && !json_object_getn(r, k, klen))
                fail("a member the patch does not name was removed");
        }
}

/* 1 when some object member, at any depth through objects, is null. */
static int has_null_member(json_t *v)
{
    const char *k;
    json_t *m;
    if (!json_is_object(v))
        return 0;
    json_object_foreach(v, k, m) if (json_is_null(m) || has_null_member(m)) return 1;
    return 0;
}

static void fuzz(json_t *t, json_t *p)
{
    json_t *t0 = t ? json_deep_copy(t) : NULL, *p0 = json_deep_copy(p);
    json_t *r = merge(t, p);
    if ((t && !json_equal(t, t0)) || !json_equal(p, p0))
        fail("json_merge_patch modified an input");

    json_t *ref = reference(t, p);
    if (!json_equal(r, ref))
        fail("result differs from the RFC 7396 reference");
    json_decref(ref);

    json_t *r2 = merge(r, p);
    if (!json_equal(r2, r))
        fail("applying the patch twice differs from once");
    json_decref(r2);

    check_members(t, p, r);

    json_t *empty = json_object(), *r3 = merge(r, empty);
    if (!json_is_object(r) ? !json_equal(r3, empty) : !json_equal(r3, r))
        fail("an empty patch changed an object (or kept a non-object)");
    json_decref(r3);
    json_decref(empty);

    if (json_is_object(t) && !has_null_member(t)) {
        /* a patch made of T's own members gives T back */
        json_t *r4 = merge(t, t);
        if (!json_equal(r4, t))
            fail("a patch of the target's own members changed it");
        json_decref(r4);
    }

    char *text = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
    json_error_t je;
    json_t *back = text ? json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je) : NULL;
    if (!back || !json_equal(back, r))
        fail("the result does not serialize and parse back to itself");
    json_decref(back);
    free(text);

    json_decref(r);
    json_decref(t0);
    json_decref(p0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    const char *in = (const char *)data;
    const char *sep = memchr(in, '\0', size);
    json_t *t = NULL, *p;
    if (sep) {
        t = json_loadb(in, (size_t)(sep - in), flags, NULL);
        if (!t)
            return 0;
        p = json_loadb(sep + 1, size - (size_t)(sep - in) - 1, flags, NULL);
    } else {
        p = json_loadb(in, size, flags, NULL);
    }
    if (p)
        fuzz(t, p);
    json_decref(p);
    json_decref(t);
    return 0;
}
