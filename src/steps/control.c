/* control.c - the steps that decide an item without looking at it: noop passes it, fail
 * fails it with the step's own code and message (onError still applies). */
#include "steps/step.h"

#include "util/clock.h"
#include "util/errors.h"

void step_noop(struct step_run *r, struct step_item *p, size_t k)
{
    step_pass(r, p, k, clock_now_ms(), "Succeeded", "noop: nothing to apply", NULL);
}

void step_fail(struct step_run *r, struct step_item *p, size_t k)
{
    const struct step_def *s = &r->w->steps[k];
    step_error(r, p, k, clock_now_ms(), SLUICE_E_STEP_FAILED, s->fail_code, s->fail_message, NULL);
}
