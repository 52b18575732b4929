/* fault.h - injected storage faults: a test hook at the store_*() wrappers.
 *
 * Tests make chosen store calls fail the way a failing backend would (busy, I/O
 * error, disk full) to check that callers never report success for work that was not
 * stored, back off, and recover when the fault clears (SQLite's Nth-failure tests).
 * A fault fails the call in its wrapper in store.c, BEFORE the backend sees it: the
 * operation does not happen, as when a backend transaction rolls back.
 *
 * A rule names an operation by its wrapper's name without "store_" ("job_add_items",
 * "job_commit", "claim", "complete", "release", "retention_sweep", "job_get", ...; the
 * list is ops[] in fault.c) or "*" for every one. Each rule counts the calls it
 * matches from the moment it is set: calls nth, nth+1, ..., nth+count-1 fail with
 * its error (count 0: every call from nth on). Rules are independent; the first
 * that fires decides. Every injected failure is logged at WARN ("injected storage
 * fault", op, error), so a test can tell that its fault happened.
 *
 * An AFTER rule (store_fault_set_after, or ":after" in a spec) models a lost answer
 * instead: the call goes to the backend and takes effect, and then reports the error
 * (as when a commit reached the disk but the reply did not reach the caller). It
 * counts the calls of its op that succeeded; only job_commit and complete have it.
 *
 * The server arms rules only from the environment, at start:
 *
 *   SLUICE_FAULTS="complete:1:io:5,claim:10:busy:2,job_add_items:2:full"
 *
 * each rule "OP:NTH:ERROR[:COUNT[:after]]" (COUNT defaults to 1), ERROR one of busy
 * (StoreBusy), io (StoreUnavailable), full (StoreFull) or any public error code of
 * util/errors.h. SLUICE_FAULTS="@FILE" reads the rules from FILE, at start and again
 * on every SIGUSR1 (replacing the rules; an empty file clears them), so a black-box
 * test can start and end an outage when it wants. This is a test hook: production
 * never sets the variable.
 *
 * Cost when no rule was ever set: one atomic load per store call. Thread-safe. */
#ifndef SLUICE_STORE_FAULT_H
#define SLUICE_STORE_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_FAULT_MAX 64 /* rules at once */

/* Adds a rule: calls nth.. nth+count-1 (count 0: all from nth on) of op ("*" = any
 * operation) fail with err (a negative sluice error, e.g. -SLUICE_E_STORE_IO).
 * Returns 0, or -SLUICE_E_INVALID_PARAMETER (unknown op, nth < 1, count < 0, err >=
 * 0, or STORE_FAULT_MAX rules already set). */
int store_fault_set(struct store *st, const char *op, int64_t nth, int err, int64_t count);

/* Adds an AFTER rule (see above): successful calls nth.. nth+count-1 of op take effect
 * and then return err. op is "job_commit" or "complete"; else as store_fault_set. */
int store_fault_set_after(struct store *st, const char *op, int64_t nth, int err, int64_t count);

/* Adds the rules of a SLUICE_FAULTS spec (see above). On a malformed spec nothing is
 * added, [out] msg (cap bytes) says why, and it returns -SLUICE_E_INVALID_PARAMETER. */
int store_fault_parse(struct store *st, const char *spec, char *msg, size_t cap);

/* Removes every rule: later calls reach the backend again. */
void store_fault_clear(struct store *st);

/* Failures injected so far by the rules of op ("*" rules included; op NULL: by all
 * rules), since the rules were set. */
int64_t store_fault_fired(struct store *st, const char *op);

#endif
