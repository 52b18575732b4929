/* workflow.c - resolves built-in workflow names; see workflow.h. */
#include "engine/workflow.h"

#include <string.h>

#include "util/errors.h"

int workflow_collection_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return 0;
    for (const char *s = name; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

int workflow_resolve(const char *name, struct workflow *out)
{
    struct workflow w;
    memset(&w, 0, sizeof w);
    if (strcmp(name, "noop") == 0) {
        w.kind = WORKFLOW_NOOP;
    } else {
        const char *dot = strrchr(name, '.');
        if (!dot || (size_t)(dot - name) >= sizeof w.collection)
            return -SLUICE_E_UNKNOWN_WORKFLOW;
        memcpy(w.collection, name, (size_t)(dot - name));
        w.collection[dot - name] = '\0';
        if (!workflow_collection_valid(w.collection))
            return -SLUICE_E_UNKNOWN_WORKFLOW;
        w.kind = WORKFLOW_DOC;
        if (strcmp(dot + 1, "upsert") == 0)
            w.op = STORE_OP_UPSERT;
        else if (strcmp(dot + 1, "patch") == 0)
            w.op = STORE_OP_PATCH;
        else if (strcmp(dot + 1, "delete") == 0)
            w.op = STORE_OP_DELETE;
        else
            return -SLUICE_E_UNKNOWN_WORKFLOW;
    }
    if (out)
        *out = w;
    return 0;
}
