/* log.h - structured logs: one JSON object per line on stderr.
 *
 * log_write(LOG_INFO, "request", "method", "GET", "status", "=200", NULL) writes
 * {"ts":"...","level":"info","msg":"request","method":"GET","status":200}.
 * Arguments after msg are key/value string pairs ending with NULL; a value starting
 * with '=' is written raw (numbers, true/false). Thread-safe (one write() per line). */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Messages below min are dropped. Default LOG_INFO. */
void log_set_level(enum log_level min);
void log_write(enum log_level lvl, const char *msg, ...);

#endif
