/* secrets.h - where a workflow definition may name a secret, and what a secret's name
 * is. Who may use which secret, and resolving it for a run: engine/secrets.h.
 *
 * DESIGN: Placement
 * {{secrets.NAME}} may appear only in an http step's header values and, when the step
 * says "secretBody": true, its body; never {{secrets}} as a whole, never in a URL, map,
 * description or anywhere else. Checked when a workflow is compiled (spec/workflow.c),
 * so a stored definition never renders a secret where it could leak. Pure rules over
 * the definition's JSON; thread-safe. */
#ifndef SLUICE_SPEC_SECRETS_H
#define SLUICE_SPEC_SECRETS_H

#include <jansson.h>

#define SECRETS_NAME_MAX 64

/* Nonzero when name may name a secret: 1..64 characters of A-Z a-z 0-9 _ -. */
int secrets_name_valid(const char *name);

/* Scans template text for placeholders whose path starts at "secrets". Appends each
 * NAME of a {{secrets.NAME}} to names (a JSON array; may be NULL).
 * Returns the number of such placeholders (0: none), or -1 when one of them is not
 * exactly secrets.NAME with a valid name ({{secrets}}, secrets.a.b, ...). */
int secrets_scan(const char *tpl, json_t *names);

/* Checks where a workflow definition names secrets (see DESIGN). def is the whole
 * definition. Returns 0 when every use is allowed; else -1 with a message in err and
 * the location in target ("steps[2].url", "steps[0].headers.X", "description"). */
int secrets_check_definition(json_t *def, char *err, size_t errlen, char *target, size_t targetlen);

#endif
