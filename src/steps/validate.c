/* validate.c - the validate step: the item's data against the step's JSON Schema
 * (lang/schema.h); every violation is reported, the first five in the message. */
#include "steps/step.h"

#include "lang/schema.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"

void step_validate(struct step_run *r, struct step_item *p, size_t k)
{
    const struct step_def *s = &r->w->steps[k];
    int64_t start = clock_now_ms();
    json_t *data = json_object_get(step_ctx(r, p), "data");
    json_t *v = json_array();
    int nv = schema_validate(s->schema, data, v);
    if (nv <= 0) {
        json_decref(v);
        step_pass(r, p, k, start, "Valid", "data matches the schema", NULL);
        return;
    }
    struct buf m = BUF_INIT;
    buf_printf(&m, "%d schema violation%s: ", nv, nv == 1 ? "" : "s");
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (i == 5) {
            buf_puts(&m, "; ...");
            break;
        }
        buf_printf(&m, "%s%s: %s", i ? "; " : "",
                   json_string_length(json_object_get(x, "pointer"))
                       ? json_string_value(json_object_get(x, "pointer"))
                       : "(root)",
                   json_string_value(json_object_get(x, "message")));
    }
    step_error(r, p, k, start, SLUICE_E_VALIDATION_FAILED, NULL, buf_cstr(&m),
               json_pack("{s:o}", "violations", v));
    buf_release(&m);
}
