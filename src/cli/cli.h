/* cli.h - the command-line side of the sluice binary: the HTTP client commands and
 * the key administration command. main.c dispatches here on argv[1]. */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

/* Client commands: argv[0] is the command name ("submit", "status", "watch", "items",
 * "results", "cancel", "jobs"). Talks to SLUICE_URL (default http://127.0.0.1:8080)
 * with SLUICE_KEY. Returns the process exit status: 0 success (for submit --wait and
 * watch: only when the job Succeeded with no failed item), 1 the job failed or
 * partially failed or was canceled, 2 usage error, 3 HTTP/connection/server error. */
int cli_client_main(int argc, char **argv);

/* "keys create --tenant T | list | revoke KEY_ID" on the store given by --store URL or
 * SLUICE_STORE (default sqlite:./data/sluice.db). Returns the exit status. */
int cli_keys_main(int argc, char **argv);

/* "tenants weight TENANT W" on the store, like cli_keys_main. Returns the exit status. */
int cli_tenants_main(int argc, char **argv);

/* Nonzero when argv[1] names a client command handled by cli_client_main. */
int cli_is_client_command(const char *name);

#endif
