/* errors.c - lookups into the SLUICE_ERRORS table. */
#include "util/errors.h"

struct row {
    int status;
    const char *code;
    const char *msg;
};

static const struct row rows[] = {[SLUICE_OK] = {200, "Ok", "ok"},
#define X(name, st, code, msg) [SLUICE_E_##name] = {st, code, msg},
                                  SLUICE_ERRORS(X)
#undef X
};

static const struct row *find(int err)
{
    if (err < 0)
        err = -err;
    if (err <= 0 || err >= SLUICE_E__COUNT)
        err = SLUICE_E_INTERNAL;
    return &rows[err];
}

int sluice_err_status(int err)
{
    return find(err)->status;
}

const char *sluice_err_code(int err)
{
    return find(err)->code;
}

const char *sluice_err_message(int err)
{
    return find(err)->msg;
}
