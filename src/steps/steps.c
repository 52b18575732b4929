/* steps.c - the dispatch table: every step type's runner, one row each, made from
 * spec/workflow.h's STEP_TYPES (the same list gives the types' names and store ops). */
#include "steps/step.h"

#define STEP_ROW(e, name, op, each, batch) [STEP_##e] = {each, batch},
static const struct step_kind table[] = {STEP_TYPES(STEP_ROW)};
#undef STEP_ROW

const struct step_kind *steps_kind(enum step_type t)
{
    return &table[t];
}
