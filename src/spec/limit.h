/* limit.h - a processing limit's definition (PUT /v1/limits/{name}, the server's
 * config): checking its JSON, rendering it back, and its bucket key template. Pure
 * functions, no registry and no lock: the limits themselves (buckets, admission,
 * pacing) are engine/limits.h, which explains what the members mean. */
#ifndef SLUICE_SPEC_LIMIT_H
#define SLUICE_SPEC_LIMIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define LIMITS_NAME_MAX 65 /* names: [A-Za-z0-9_.-]{1,64} */
#define LIMITS_MAX_USES 16 /* limits one job may consume (workflow and steps) */

struct limits_def {
    char key[256];       /* template */
    double rate;         /* tokens per second; 0 = no rate */
    double per_s;        /* seconds of "per" (1, 60, 3600), for rendering */
    double rate_in_per;  /* the rate as given, per "per" */
    int64_t burst;       /* >= 1 when rate > 0 */
    int64_t concurrency; /* 0 = no cap */
};

/* Nonzero when name may name a limit: [A-Za-z0-9_.-]{1,64}. */
int limits_name_valid(const char *name);
/* Checks a definition. 0 and [out] d, or -SLUICE_E_INVALID_FIELD with a message in
 * err and the member at fault in target ("rate"). */
int limits_def_parse(const json_t *j, struct limits_def *d, char *err, size_t errlen, char *target,
                     size_t targetlen);
/* The definition as JSON (what GET shows): {"key","rate","per","burst","concurrency"}
 * with absent members left out. New reference. */
json_t *limits_def_json(const struct limits_def *d);
/* -SLUICE_E_INVALID_FIELD with msg in err and member in target. */
int limits_def_fail(char *err, size_t errlen, char *target, size_t targetlen, const char *member,
                    const char *msg);
/* Expands the key template tmpl for one use into out. */
void limits_key_resolve(const char *tmpl, const char *tenant, const char *workflow,
                        const char *step, const char *host, char *out, size_t outlen);

#endif
