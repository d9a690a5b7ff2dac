/* registry.c: the collectors built in, lookup by name, creation from spec strings. */
#include "hr_gc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const hr_gc_vt hr_gc_none_vt, hr_gc_refcount_vt, hr_gc_marksweep_vt, hr_gc_generational_vt;

#define MAX_GC 16
static const hr_gc_vt *registry[MAX_GC + 1] = {&hr_gc_generational_vt, &hr_gc_refcount_vt,
                                               &hr_gc_marksweep_vt, &hr_gc_none_vt, NULL};

const hr_gc_vt *const *hr_gc_registry(void) { return registry; }

const hr_gc_vt *hr_gc_by_name(const char *name)
{
    for (size_t i = 0; registry[i]; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

int hr_gc_register_extra(const hr_gc_vt *vt)
{
    size_t n = 0;
    while (registry[n])
        n++;
    if (hr_gc_by_name(vt->name))
        return HR_EUSAGE; /* duplicate names are refused */
    if (n == MAX_GC)
        return HR_ENOMEM;
    registry[n] = vt;
    registry[n + 1] = NULL;
    return HR_OK;
}

int hr_gc_create(hr_gc_t **out, const char *spec_text, const hr_gc_env_t *env, hr_err_t *err)
{
    *out = NULL;
    hr_spec_t spec;
    int rc = hr_spec_parse(&spec, spec_text, "collector", err);
    if (rc)
        return rc;
    const hr_gc_vt *vt = hr_gc_by_name(spec.name);
    if (!vt) {
        char names[256] = "";
        for (size_t i = 0; registry[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     registry[i]->name);
        char hint[96];
        return hr_err_set(err, HR_EUSAGE, "unknown collector '%s'%s (known: %s)", spec.name,
                          hr_did_you_mean(hint, sizeof hint, spec.name, names), names);
    }
    hr_gc_t *g = calloc(1, sizeof *g);
    if (!g)
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    g->vt = vt;
    snprintf(g->spec, sizeof g->spec, "%s", spec_text);
    char known[256];
    if ((rc = vt->create(&g->ctx, &spec, env, err)) ||
        (rc = hr_spec_check_unused(&spec, "collector",
                                   hr_spec_keys_of(vt->params, known, sizeof known), err))) {
        if (g->ctx)
            vt->destroy(g->ctx);
        free(g);
        return rc;
    }
    *out = g;
    return HR_OK;
}

void hr_gc_destroy(hr_gc_t *g)
{
    if (!g)
        return;
    g->vt->destroy(g->ctx);
    free(g);
}

int hr_gc_describe(hr_buf_t *out)
{
    int rc = 0;
    for (size_t i = 0; registry[i]; i++)
        rc |= hr_buf_printf(out, "%-13s %s\n%-13s parameters: %s\n", registry[i]->name,
                            registry[i]->summary, "", registry[i]->params);
    return rc ? HR_ENOMEM : HR_OK;
}
