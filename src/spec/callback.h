/* callback.h - the completion callback a submit names: the JSON envelope's "callback"
 * object ({"url": "https://...", "events": ["job.completed", "job.failed",
 * "job.canceled"]}, events optional = all), or an NDJSON submit's callbackUrl and
 * callbackEvents query parameters. Pure functions of their input, for the submit path;
 * delivering callbacks is engine/callbacks.h. */
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
/* Parses the raw JSON object of a submit's "callback" field. [out] *url (heap; caller
 * frees with free()) and *events (STORE_CB_* bits, STORE_CB_ALL when absent). 0, or
 * -SLUICE_E_INVALID_FIELD with target ("callback", "callback.url",
 * "callback.events", "callback.<unknown key>") and message. */
int callback_spec_parse(const char *json, size_t len, char **url, int *events, char *target,
                        size_t targetlen, char *msg, size_t msglen);

#endif
