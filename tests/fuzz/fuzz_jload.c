/* fuzz-link: src/util */
/* fuzz_jload.c - libFuzzer target for util/jload.c, the parser of upstream answers, item
 * data and stored documents.
 *
 * Input: any bytes, parsed as JSON text. Invariant (abort() on violation), with and
 * without the NUL flag: jload accepts exactly what json_loadb(JSON_DECODE_ANY [|
 * JSON_ALLOW_NUL]) accepts, and the two values write the same compact text (the same
 * members in the same order, the same numbers). One documented difference: a text with
 * a raw NUL byte, which jansson's reader sometimes steps over ("[1\0]"), jload refuses. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    for (int nul = 0; nul < 2; nul++) {
        json_t *theirs = json_loadb(text, size, JSON_DECODE_ANY | (nul ? JSON_ALLOW_NUL : 0), NULL);
        json_t *ours = jload(text, size, nul ? JLOAD_ALLOW_NUL : 0);
        if (!ours && theirs && memchr(text, '\0', size)) {
            json_decref(theirs);
            continue;
        }
        if (!theirs != !ours) {
            fprintf(stderr, "jansson %s, jload %s\n", theirs ? "accepts" : "refuses",
                    ours ? "accepts" : "refuses");
            abort();
        }
        if (theirs) {
            char *a = json_dumps(theirs, JSON_COMPACT | JSON_ENCODE_ANY);
            char *b = json_dumps(ours, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!a || !b || strcmp(a, b) != 0 || !json_equal(theirs, ours)) {
                fprintf(stderr, "values differ:\n%s\n%s\n", a ? a : "?", b ? b : "?");
                abort();
            }
            free(a);
            free(b);
        }
        json_decref(theirs);
        json_decref(ours);
    }
    return 0;
}
