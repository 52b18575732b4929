/* keygen.c - API key material for "sluice keys" (see cli_int.h).
 *
 * Separate from keys.c, which needs the store, so that key shape and tenant rules
 * are unit-tested without one. */
#include <string.h>

#include "cli/cli_int.h"
#include "util/ids.h"

int cli_tenant_valid(const char *t)
{
    size_t n = strlen(t);
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int cli_key_generate(char key[CLI_KEY_LEN + 1], char key_id[CLI_KEY_ID_LEN + 1])
{
    /* Two draws: the id part (also the public key id) and the 40-char secret;
     * 48 symbols of 36 give log2(36) * 48 ~ 248 bits, of which the 40 secret
     * ones (~206 bits) are never shown again after creation. */
    char secret[1 + 40 + 1];
    int rc = ids_random(IDS_KEY_PREFIX, CLI_KEY_ID_LEN - 4, key_id);
    if (rc < 0)
        return rc;
    rc = ids_random("_", 40, secret);
    if (rc < 0)
        return rc;
    memcpy(key, key_id, CLI_KEY_ID_LEN);
    memcpy(key + CLI_KEY_ID_LEN, secret, sizeof secret);
    return 0;
}
