/* callback.h - the completion callback a submit names: the JSON envelope's "callback"
 * object ({"url": "https://...", "events": ["job.completed", "job.failed",
 * "job.canceled"], "format": "stripe" | "standard-webhooks"}, events optional = all,
 * format optional = the tenant's default), or an NDJSON submit's callbackUrl,
 * callbackEvents and callbackFormat query parameters. Pure functions of their input, for the submit
 * path; delivering callbacks is engine/callbacks.h. */
#ifndef SLUICE_SPEC_CALLBACK_H
#define SLUICE_SPEC_CALLBACK_H

#include <stddef.h>

#include "store/store.h"

#define CALLBACK_URL_MAX 2048

/* Checks an absolute http:// or https:// URL with a host, at most CALLBACK_URL_MAX
 * bytes, printable ASCII without spaces. 0, or -SLUICE_E_INVALID_FIELD with a
 * message in msg. */
int callback_url_check(const char *url, char *msg, size_t msglen);
/* Parses a comma-separated list of event names ("job.completed,job.failed") into
 * STORE_CB_* bits. 0, or -SLUICE_E_INVALID_FIELD with a message. */
int callback_events_parse(const char *list, int *events, char *msg, size_t msglen);
/* Parses a signature format name of n bytes: "stripe" (STORE_CB_FORMAT_STRIPE) or
 * "standard-webhooks" (STORE_CB_FORMAT_STANDARD). 0 and [out] *format, or
 * -SLUICE_E_INVALID_FIELD with a message. */
int callback_format_parse(const char *s, size_t n, int *format, char *msg, size_t msglen);
/* The name of a STORE_CB_FORMAT_* (DEFAULT: "stripe", what it means when nothing is
 * set); NULL for an unknown one. */
const char *callback_format_name(int format);
/* Parses the raw JSON object of a submit's "callback" field. [out] *url (heap; caller
 * frees with free()), *events (STORE_CB_* bits, STORE_CB_ALL when absent) and *format
 * (STORE_CB_FORMAT_*, DEFAULT when absent). 0, or -SLUICE_E_INVALID_FIELD with target
 * ("callback", "callback.url", "callback.events", "callback.format",
 * "callback.<unknown key>") and message. */
int callback_spec_parse(const char *json, size_t len, char **url, int *events, int *format,
                        char *target, size_t targetlen, char *msg, size_t msglen);

#endif
