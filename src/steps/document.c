/* document.c - the document steps (upsert, patch, delete): one document op per item on
 * the step's collection, written at once in a synchronous run or returned with the
 * item's outcome for the store to apply (see engine/pipeline.h, Document steps). */
#include "steps/step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/path.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/jsonw.h"
#include "util/secmask.h"
#include "util/xmalloc.h"

/* The ref a document step works on: the item's, or read from refFrom. */
static int doc_ref(struct step_run *r, struct step_item *p, const struct step_def *s, char *out,
                   size_t len, char *err, size_t errlen)
{
    if (!s->ref_from) {
        snprintf(out, len, "%s", p->in->ref);
        return 0;
    }
    json_t *v = path_get(step_ctx(r, p), s->ref_from);
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= 256 &&
        !memchr(json_string_value(v), 0, json_string_length(v))) {
        snprintf(out, len, "%s", json_string_value(v));
        return 0;
    }
    if (json_is_integer(v)) {
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
        return 0;
    }
    snprintf(err, errlen, "refFrom %s is missing or not a string of 1 to 256 bytes", s->ref_from);
    return -1;
}

void step_document(struct step_run *r, struct step_item *p, size_t k)
{
    const struct step_def *s = &r->w->steps[k];
    enum store_op op = wfdef_step_store_op(s->type);
    int64_t start = clock_now_ms();
    char ref[300], err[300], msg[700];
    if (doc_ref(r, p, s, ref, sizeof ref, err, sizeof err) < 0) {
        step_error(r, p, k, start, SLUICE_E_INVALID_DATA, NULL, err, NULL);
        return;
    }
    /* A ref read from the data can carry a secret the run resolved (an upstream that
     * echoes it, copied by a map). Masking it would write another document than the one
     * asked for, and the ref shows in listings and URLs: the item fails instead, before
     * anything is written. The item's own ref comes from the submitter, not a secret. */
    if (s->ref_from && secmask_hit(r->mask, ref, strlen(ref))) {
        snprintf(err, sizeof err, "refFrom would reveal a secret (step %s, refFrom %s)", s->name,
                 s->ref_from);
        step_error(r, p, k, start, SLUICE_E_INVALID_DATA, NULL, err, NULL);
        return;
    }
    /* The document body: the item's raw bytes unless a step changed data. */
    char *body = NULL;
    size_t body_len = 0;
    if (op != STORE_OP_DELETE) {
        if (p->dirty) {
            body = jsonw_dump(json_object_get(p->ctx, "data"), &body_len);
            if (body_len > r->max_item_bytes) { /* the store would refuse it too; say where */
                free(body);
                snprintf(err, sizeof err, "the document would be larger than %zu bytes",
                         r->max_item_bytes);
                step_too_large(r, p, k, start, NULL, err);
                return;
            }
        } else if (!p->in->data) {
            step_error(r, p, k, start, SLUICE_E_INVALID_DATA, NULL, "item has no data to apply",
                       NULL);
            return;
        }
    }
    if (r->immediate) {
        /* Written now, so mask_result() never sees it: mask here what a step produced
         * (the item's own bytes, unchanged, are the submitter's and are stored as
         * sent, as in deferred mode). */
        if (body && !secmask_empty(r->mask)) {
            char *t = secmask_json(r->mask, body);
            free(body);
            body = t;
            body_len = strlen(t);
        }
        struct store_doc d;
        memset(&d, 0, sizeof d);
        int created = 0;
        int rc =
            store_doc_write(r->st, r->tenant, s->collection, ref, op, body ? body : p->in->data,
                            body ? body_len : p->in->data_len, -1, &d, &created);
        free(body);
        if (rc < 0) {
            snprintf(msg, sizeof msg, "%s/%s: %s", s->collection, ref, sluice_err_message(rc));
            step_error(r, p, k, start, rc, NULL, msg, NULL);
            return;
        }
        step_set_output(r, p, s->name,
                        json_pack("{s:s,s:s,s:I,s:b}", "collection", s->collection, "ref", ref,
                                  "version", (json_int_t)d.version, "created", created));
        snprintf(msg, sizeof msg, "%s/%s version %lld", s->collection, ref, (long long)d.version);
        store_doc_release(&d);
        step_pass(r, p, k, start, "VersionWritten", msg, NULL);
        return;
    }
    /* Deferred: applied with the outcome. A patch or delete of a missing document is
     * caught now, so the item fails at its own step (before any later http step, and
     * with the step counts right); only a concurrent delete can still make the op
     * fail when it is applied. */
    if (op == STORE_OP_PATCH || op == STORE_OP_DELETE) {
        int earlier = 0; /* an earlier op of this item creates it */
        for (size_t i = 0; i < p->out->nops; i++)
            if (!strcmp(p->out->ops[i].collection, s->collection) &&
                !strcmp(p->out->ops[i].ref, ref))
                earlier = p->out->ops[i].op != STORE_OP_DELETE;
        struct store_doc d;
        memset(&d, 0, sizeof d);
        int rc = earlier ? 1 : store_doc_get(r->st, r->tenant, s->collection, ref, &d);
        store_doc_release(&d);
        if (rc == 0) {
            free(body);
            snprintf(msg, sizeof msg, "%s/%s does not exist", s->collection, ref);
            step_error(r, p, k, start, SLUICE_E_DOCUMENT_NOT_FOUND, NULL, msg, NULL);
            return;
        }
    }
    if (p->out->nops == p->capops) {
        p->capops = p->capops ? p->capops * 2 : 2;
        p->out->ops = xrealloc(p->out->ops, p->capops * sizeof *p->out->ops);
    }
    struct store_doc_op *o = &p->out->ops[p->out->nops++];
    memset(o, 0, sizeof *o);
    o->op = op;
    o->collection = s->collection;
    o->ref = xstrdup(ref);
    o->data = body; /* NULL: the item's stored data */
    o->data_len = body_len;
    o->step = s->name;
    if (!r->w->builtin)
        step_set_output(r, p, s->name,
                        json_pack("{s:s,s:s,s:s}", "collection", s->collection, "ref", ref, "op",
                                  wfdef_step_type_name(s->type)));
    if (r->w->builtin) { /* the store's VersionWritten event tells the rest */
        r->counts[k].passed++;
        return;
    }
    snprintf(msg, sizeof msg, "%s/%s: %s is applied with the item's outcome", s->collection, ref,
             wfdef_step_type_name(s->type));
    step_pass(r, p, k, start, "Queued", msg, NULL);
}
