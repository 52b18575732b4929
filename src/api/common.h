/* common.h - small helpers shared by the handlers: query parsing with 400 answers,
 * list envelopes. */
#ifndef SLUICE_API_COMMON_H
#define SLUICE_API_COMMON_H

#include <stdint.h>

#include "api/api.h"
#include "util/buf.h"

static inline struct api *api_of(struct request *req)
{
    return req_app(req);
}

/* Reads integer query parameter name into *out (def when absent), within [min, max].
 * On a bad value replies 400 (target = name) and returns -1. */
int api_query_int(struct request *req, const char *name, int64_t def, int64_t min, int64_t max,
                  int64_t *out);
/* Starts a list body: {"value":[ */
void api_list_begin(struct buf *b);
/* Ends a list body; next_query (may be NULL: last page) is appended to the request's
 * base URL and path to make nextLink. */
void api_list_end(struct buf *b, struct request *req, const char *next_query);

#endif
