/* http_int.h - what the http step's two runners share: one request per item (http.c)
 * and many items per request (http_batch.c, the step's "batch" option). Private to
 * steps/. */
#ifndef SLUICE_STEPS_HTTP_INT_H
#define SLUICE_STEPS_HTTP_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "outbound/outbound.h"
#include "steps/step.h"

/* One item's rendered request: URL, header lines, body (for a batch: the item's
 * element) and Idempotency-Key, all heap; start is when it was rendered (wall ms). */
struct hreq {
    struct step_item *p;
    char *url, *body, *key;
    char **headers; /* NULL-terminated */
    size_t nheaders;
    int64_t start;
};

/* Renders item p's request for step k into h. 0, or -1 after failing the item (template
 * error, missing secret, too large); h is then released by the caller. */
int http_prepare(struct step_run *r, size_t k, struct step_item *p, struct hreq *h);
void http_hreq_release(struct hreq *h);

/* The outbound request for one rendered request (strings borrowed; they must outlive
 * the send), paced by pacer. */
void http_request_fill(struct outbound_request *q, const struct step_run *r,
                       const struct step_def *s, const struct step_pacer *pacer, const char *url,
                       char **headers, const char *body, const char *key);
/* Sends reqs[0..m) (all at once, as outbound_run does; failing each when outbound calls
 * are disabled) and masks the run's secrets in every message. */
void http_send(struct step_run *r, struct outbound_request *reqs, struct outbound_response *resps,
               size_t m);

/* A response body as a value: parsed JSON when it says JSON and parses, else its text
 * (null when empty). New reference. */
json_t *http_response_body(const struct outbound_response *resp);
/* A kept output: {"status", "body": body (stolen), "headers": {"content-type",
 * "location"}} (null for a header the answer lacks). New reference. */
json_t *http_output(const struct outbound_response *resp, json_t *body);
/* The event fields of a request's outcome: method, url (masked), status, latencyMs,
 * totalMs, attempts, and failure when it got no answer. New reference. */
json_t *http_extra(const struct step_def *s, const char *masked_url,
                   const struct outbound_response *resp);
/* The request's own span: from when it could start (fallback when unknown) to its final
 * outcome, wall ms. */
void http_span(const struct outbound_response *resp, int64_t fallback, int64_t *start,
               int64_t *end);
/* Fails p at step k for a request that got no answer (resp->error): TargetNotAllowed or
 * UpstreamUnavailable; a shutdown marks the item aborted. extra is stolen. */
void http_unanswered(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                     const char *masked_url, const struct outbound_response *resp, json_t *extra);
/* Keeps out (stolen) as step k's output of p. 0; or -1 when the item's outputs would
 * then pass its size: the output is dropped and p fails with ItemTooLarge, the message
 * led by what (extra is then stolen; on 0 it is left to the caller). */
int http_keep(struct step_run *r, struct step_item *p, size_t k, json_t *out, int64_t start,
              int64_t end, const char *what, json_t *extra);

/* Fails p at step k with ItemTooLarge: the output it would keep passes the item's size;
 * the message is led by what. extra is stolen. */
void http_too_large(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                    const char *what, json_t *extra);

/* The runner of a step with "batch" (http_batch.c). */
void step_http_batch(struct step_run *r, size_t k);

#endif
