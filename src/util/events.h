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
 *   {"T": <epoch ms> | "u": <ms after the array's latest event with "T" or "t">,
 *    ["s": stage], ["p": step, absent when it is the type's name], ["y": type],
 *    ["o": outcome, only when the level does not say it], ["n": attempt],
 *    ["w": worker], ["l": level, absent for "info"], ["c": code], ["m": message],
 *    ["d": durationMs], extra members...}
 * What a member left out stands for:
 *   - "s": "claim" in an event with "w", "step" in one with "y";
 *   - "c": "Claimed" in an event with "w", "VersionWritten" in an info event of stage
 *     "apply", "" in others; in a passed step event, "c" and "m" both
 *     left out are the type's one fixed message (noop, map, validate: events.c);
 *   - "m" in an event with "w": "claimed by worker W (attempt N)";
 *   - "n" in a step event: the attempt of the array's latest event with "n" ("n": 0,
 *     no attempt); in any other event, no attempt;
 *   - "d" in a step event: 0 ("d": -1, no duration); in any other event, no duration.
 * So an item's claim is {"T":..,"w":1,"n":1} and a no-op step after it {"u":3,"y":"noop"}.
 * A step event (one with a type) has an outcome and an endedAt: the outcome is
 * "passed" for level info and "failed" for level error unless "o" says otherwise, and
 * endedAt is at + max(d, 0). Extra members (http details, violations, batch) keep their
 * names, which are never one letter.
 *
 * Arrays written before keep their forms, and an array may mix them: an element with
 * "at" is public already; one with "t" (absolute time) says every member but "p", "o",
 * "l", "d" and, with "w", "m" (then "n" is the claim's attempt). */
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
    /* How e sits in its array (0 for both: stands alone). base > 0: the time of the
     * array's latest event written with an absolute time (a claim), e's time is written
     * after it; same_attempt: a step event whose attempt the array's latest "n" says. */
    int64_t base;
    int same_attempt;
    /* Extra members already written, each led by ',' (NULL: none): what many events
     * share is written once, not once per event. */
    const char *extra_text;
};

/* Appends e in the compact form, after a ',' when b holds more than an opening '['.
 * extra (borrowed, may be NULL): an object whose members join the event's. The names,
 * stages, types, levels and codes are plain ASCII identifiers; message is escaped. */
void events_put(struct buf *b, const struct item_event *e, json_t *extra);

/* The base (item_event.base) of an event to append to the array text arr of len bytes
 * (its ']' may be missing): the time of its first event when that is the only one with
 * an absolute time, else 0 (write an absolute time). */
int64_t events_base(const char *arr, size_t len);

/* Appends to out the public form of the stored array text (either form, or a mix).
 * Text that is not a JSON array is copied as it is (nothing written by sluice is).
 * Never fails. */
void events_expand(struct buf *out, const char *stored);

#endif
