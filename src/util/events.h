/* events.h - an item's events (its step-by-step log): the compact form the engine and
 * the store write, and the public form the API shows.
 *
 * Every item gets a few events and a store keeps them with its outcome, so they are a
 * large share of the bytes written per item: they are kept compact and expanded only
 * when an item is read (store_item_get, a synchronous run's answer).
 *
 * Public event, as the API shows it (members in this order; [] when present):
 *   {"at": "<ISO 8601 ms>", "stage", ["step"], ["type", "outcome", "endedAt"],
 *    ["attempt"], "level", "code", "message", ["durationMs"], extra members...}
 * Compact event, as stored:
 *   {"t": <epoch ms>, "s": stage, ["p": step, absent when it is the type's name],
 *    ["y": type], ["o": outcome, only when the level does not say it], ["n": attempt],
 *    ["w": worker], ["l": level, absent for "info"], "c": code, "m": message (absent
 *    with "w"), ["d": durationMs], extra members...}
 * An event with "w" is a claim: its message is "claimed by worker W (attempt N)" and
 * its attempt goes into the message only (every item has one; the text is written
 * when the event is read).
 * A step event (one with a type) has an outcome and an endedAt: the outcome is
 * "passed" for level info and "failed" for level error unless "o" says otherwise, and
 * endedAt is t + max(d, 0). Extra members (http details, violations, batch) keep their
 * names, which are never one letter. An array may mix both forms (events written
 * before this encoding keep theirs): an element with "at" is public already. */
#ifndef SLUICE_UTIL_EVENTS_H
#define SLUICE_UTIL_EVENTS_H

#include <jansson.h>
#include <stdint.h>

#include "util/buf.h"

struct item_event {
    int64_t at;          /* epoch ms */
    const char *stage;   /* claim, validate, step, apply, retry, ... */
    const char *step;    /* the step's name, or NULL */
    const char *type;    /* a step event: the step's type (then outcome applies), or NULL */
    const char *outcome; /* a step event: passed | failed | skipped | continued */
    int attempt;         /* > 0 to show */
    int worker;          /* > 0: a claim by this worker (message left NULL, see above) */
    const char *level;   /* info | warn | error */
    const char *code;
    const char *message;
    int64_t duration_ms; /* >= 0 to show */
};

/* Appends e in the compact form, after a ',' when b holds more than an opening '['.
 * extra (borrowed, may be NULL): an object whose members join the event's. The names,
 * stages, types, levels and codes are plain ASCII identifiers; message is escaped. */
void events_put(struct buf *b, const struct item_event *e, json_t *extra);

/* Appends to out the public form of the stored array text (either form, or a mix).
 * Text that is not a JSON array is copied as it is (nothing written by sluice is).
 * Never fails. */
void events_expand(struct buf *out, const char *stored);

#endif
