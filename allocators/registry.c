/* registry.c: the list of allocator backends built in, lookup by name, creation from a spec. */
#include "hr_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const hr_alloc_vt hr_alloc_null_vt;
extern const hr_alloc_vt hr_alloc_libc_vt;
extern const hr_alloc_vt hr_alloc_pymalloc_vt;
#ifdef HR_HAVE_CPYTHON
extern const hr_alloc_vt hr_alloc_cpython_vt;
#endif
#ifdef HR_HAVE_JEMALLOC
extern const hr_alloc_vt hr_alloc_jemalloc_vt;
#endif
#ifdef HR_HAVE_MIMALLOC
extern const hr_alloc_vt hr_alloc_mimalloc_vt;
#endif
#ifdef HR_HAVE_TCMALLOC
extern const hr_alloc_vt hr_alloc_tcmalloc_vt;
#endif

/* Display order. NULL-terminated; room for extra backends (hr_alloc_register_extra). */
#define MAX_ALLOC 16
static const hr_alloc_vt *registry[MAX_ALLOC + 1] = {
    &hr_alloc_null_vt,
    &hr_alloc_libc_vt,
    &hr_alloc_pymalloc_vt,
#ifdef HR_HAVE_CPYTHON
    &hr_alloc_cpython_vt,
#endif
#ifdef HR_HAVE_JEMALLOC
    &hr_alloc_jemalloc_vt,
#endif
#ifdef HR_HAVE_MIMALLOC
    &hr_alloc_mimalloc_vt,
#endif
#ifdef HR_HAVE_TCMALLOC
    &hr_alloc_tcmalloc_vt,
#endif
    NULL,
};

const hr_alloc_vt *const *hr_alloc_registry(void)
{
    return registry;
}

static int checked; /* the registry passed hr_alloc_registry_check: 0 not yet, 1 yes, -1 no */

int hr_alloc_register_extra(const hr_alloc_vt *vt)
{
    size_t n = 0;
    while (registry[n])
        n++;
    if (hr_alloc_by_name(vt->name))
        return HR_EUSAGE; /* duplicate names are refused */
    if (n == MAX_ALLOC)
        return HR_ENOMEM;
    registry[n] = vt;
    registry[n + 1] = NULL;
    checked = 0;
    return HR_OK;
}

const hr_alloc_vt *hr_alloc_by_name(const char *name)
{
    for (size_t i = 0; registry[i]; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

int hr_alloc_registry_check(hr_err_t *err)
{
    for (size_t i = 0; registry[i]; i++) {
        const hr_alloc_vt *v = registry[i];
        if (!v->name || !v->name[0] || strpbrk(v->name, ":,="))
            return hr_err_set(err, HR_EINTERNAL, "allocator registry: entry %zu has a bad name",
                              i);
        if (!v->summary || !v->create || !v->destroy || !v->malloc || !v->realloc || !v->free)
            return hr_err_set(err, HR_EINTERNAL,
                              "allocator registry: '%s' lacks a required slot", v->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(registry[j]->name, v->name) == 0)
                return hr_err_set(err, HR_EINTERNAL,
                                  "allocator registry: the name '%s' is registered twice",
                                  v->name);
    }
    return HR_OK;
}

/* "null, libc, pymalloc, cpython" */
static void names_list(char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (const hr_alloc_vt *const *v = registry; *v; v++) {
        int n = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", (*v)->name);
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
}

int hr_alloc_create(hr_alloc_t **out, const char *spec_text, hr_err_t *err)
{
    *out = NULL;
    if (!checked) {
        hr_err_t e = {0, {0}};
        checked = hr_alloc_registry_check(&e) == HR_OK ? 1 : -1;
    }
    if (checked < 0)
        return hr_alloc_registry_check(err);

    hr_spec_t *spec = malloc(sizeof *spec);
    if (!spec)
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    int rc = hr_spec_parse(spec, spec_text, "allocator", err);
    if (rc) {
        free(spec);
        return rc;
    }
    const hr_alloc_vt *vt = hr_alloc_by_name(spec->name);
    if (!vt) {
        char names[256];
        names_list(names, sizeof names);
        char hint[96];
        rc = hr_err_set(err, HR_EUSAGE, "unknown allocator '%s'%s (built in: %s)", spec->name,
                        hr_did_you_mean(hint, sizeof hint, spec->name, names), names);
        free(spec);
        return rc;
    }
    hr_alloc_t *a = calloc(1, sizeof *a);
    if (!a) {
        free(spec);
        return hr_err_set(err, HR_ENOMEM, "out of memory");
    }
    a->vt = vt;
    rc = vt->create(&a->ctx, spec, err);
    if (rc == HR_OK) {
        /* name the parameters that exist, for the person who mistyped one */
        char known[512];
        size_t o = 0;
        known[0] = '\0';
        for (const hr_param_desc_t *p = vt->params; p && p->key; p++) {
            int n = snprintf(known + o, sizeof known - o, "%s%s", o ? ", " : "", p->key);
            if (n < 0 || (size_t)n >= sizeof known - o)
                break;
            o += (size_t)n;
        }
        rc = hr_spec_check_unused(spec, "allocator", known, err);
        if (rc)
            vt->destroy(a->ctx);
    }
    if (rc) {
        free(a);
        free(spec);
        return rc;
    }
    snprintf(a->spec, sizeof a->spec, "%s", spec_text);
    free(spec);
    *out = a;
    return HR_OK;
}

void hr_alloc_destroy(hr_alloc_t *a)
{
    if (!a)
        return;
    a->vt->destroy(a->ctx);
    free(a);
}

void hr_alloc_get_stats(hr_alloc_t *a, hr_alloc_stats_t *st)
{
    *st = a->st;
    if (a->vt->stats)
        a->vt->stats(a->ctx, st);
}

const char *hr_alloc_footprint_note(hr_alloc_t *a)
{
    return a->vt->footprint_note ? a->vt->footprint_note(a->ctx) : NULL;
}

int hr_alloc_stats_text(hr_alloc_t *a, hr_buf_t *out, hr_err_t *err)
{
    if (!a->vt->stats_text)
        return HR_OK;
    int rc = a->vt->stats_text(a->ctx, out, err);
    if (rc)
        hr_err_prefix(err, "%s: ", a->vt->name);
    return rc;
}

void hr_alloc_arena_fact(hr_alloc_t *a, uint64_t base, uint64_t size, int mapped)
{
    if (a->vt->arena_fact)
        a->vt->arena_fact(a->ctx, base, size, mapped);
}

int hr_alloc_describe(hr_buf_t *out)
{
    int rc = 0;
    for (const hr_alloc_vt *const *v = registry; *v; v++) {
        const hr_alloc_vt *vt = *v;
        rc |= hr_buf_printf(out, "%s\n    %s\n", vt->name, vt->summary);
        if (vt->params && vt->params[0].key) {
            rc |= hr_buf_printf(out, "  parameters:\n");
            for (const hr_param_desc_t *p = vt->params; p->key; p++)
                rc |= hr_buf_printf(out, "    %-10s %-36s %s\n", p->key, p->values,
                                    p->description);
        } else {
            rc |= hr_buf_printf(out, "  parameters: none\n");
        }
        if (vt->presets && vt->presets[0].name) {
            rc |= hr_buf_printf(out, "  presets (preset=NAME):\n");
            for (const hr_preset_desc_t *p = vt->presets; p->name; p++)
                rc |= hr_buf_printf(out, "    %-6s %s\n", p->name, p->description);
        }
        rc |= hr_buf_putc(out, '\n');
    }
    return rc ? HR_ENOMEM : HR_OK;
}
