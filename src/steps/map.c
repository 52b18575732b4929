/* map.c - the map step: reshapes the item's data with the step's ops (the map
 * language is lang/map.h); later steps see the new data. */
#include "steps/step.h"

#include "lang/map.h"
#include "util/clock.h"
#include "util/errors.h"

void step_map(struct step_run *r, struct step_item *p, size_t k)
{
    char err[256], where[64];
    int64_t start = clock_now_ms();
    int rc = map_apply_within(r->w->steps[k].map, step_ctx(r, p), r->max_item_bytes, where,
                              sizeof where, err, sizeof err);
    if (rc == -SLUICE_E_ITEM_TOO_LARGE) {
        step_too_large(r, p, k, start, where, err);
        return;
    }
    if (rc < 0) {
        step_error(r, p, k, start, SLUICE_E_MAP_FAILED, NULL, err, NULL);
        return;
    }
    p->dirty = 1;
    step_pass(r, p, k, start, "Mapped", "data reshaped", NULL);
}
