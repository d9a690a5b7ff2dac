/* hr_spec.c: parsing of backend spec strings ("pymalloc:preset=3.11,pool=4K"). */
#include "hr_common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hr_domain_name(int domain)
{
    static const char *const names[] = {"raw", "mem", "obj", "native"};
    return domain >= 0 && domain < HR_DOMAIN_COUNT ? names[domain] : "?";
}

int hr_spec_parse(hr_spec_t *spec, const char *text, const char *what, hr_err_t *err)
{
    memset(spec, 0, sizeof *spec);
    size_t n = strlen(text);
    if (n == 0)
        return hr_err_set(err, HR_EUSAGE, "empty %s spec", what);
    if (n >= sizeof spec->storage)
        return hr_err_set(err, HR_EUSAGE, "%s spec '%s' is too long", what, text);
    memcpy(spec->storage, text, n + 1);
    char *colon = strchr(spec->storage, ':');
    spec->name = spec->storage;
    if (colon)
        *colon = '\0';
    if (spec->name[0] == '\0')
        return hr_err_set(err, HR_EUSAGE, "%s spec '%s' has no name before ':'", what, text);
    if (!colon)
        return HR_OK;
    char *p = colon + 1;
    while (*p) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (*p == '\0')
            return hr_err_set(err, HR_EUSAGE, "%s spec '%s' has an empty parameter", what, text);
        if (spec->nparams == HR_SPEC_MAX_PARAMS)
            return hr_err_set(err, HR_EUSAGE, "%s spec '%s' has more than %d parameters", what,
                              text, HR_SPEC_MAX_PARAMS);
        hr_spec_param_t *sp = &spec->params[spec->nparams++];
        char *eq = strchr(p, '=');
        if (eq) {
            *eq = '\0';
            if (*p == '\0' || eq[1] == '\0')
                return hr_err_set(err, HR_EUSAGE, "%s spec '%s': parameter needs key=value", what,
                                  text);
            sp->key = p;
            sp->value = eq + 1;
            /* A key given twice is a typo or a stale override; taking either silently would
             * run something the user did not ask for. */
            for (int i = 0; i < spec->nparams - 1; i++)
                if (spec->params[i].key && strcmp(spec->params[i].key, p) == 0)
                    return hr_err_set(err, HR_EUSAGE, "%s spec '%s' gives '%s' twice", what, text,
                                      p);
        } else {
            sp->value = p;
        }
        if (!comma)
            break;
        p = comma + 1;
        if (*p == '\0')
            return hr_err_set(err, HR_EUSAGE, "%s spec '%s' ends with ','", what, text);
    }
    return HR_OK;
}

const char *hr_spec_get(hr_spec_t *spec, const char *key)
{
    for (int i = 0; i < spec->nparams; i++) /* keys are unique: hr_spec_parse saw to it */
        if (spec->params[i].key && strcmp(spec->params[i].key, key) == 0) {
            spec->params[i].used = 1;
            return spec->params[i].value;
        }
    return NULL;
}

const char *hr_spec_positional(hr_spec_t *spec, int i)
{
    for (int k = 0; k < spec->nparams; k++)
        if (!spec->params[k].key && i-- == 0) {
            spec->params[k].used = 1;
            return spec->params[k].value;
        }
    return NULL;
}

int hr_spec_check_unused(const hr_spec_t *spec, const char *what, const char *known,
                         hr_err_t *err)
{
    for (int i = 0; i < spec->nparams; i++) {
        const hr_spec_param_t *sp = &spec->params[i];
        if (sp->used)
            continue;
        /* with the names that exist: the nearest to a misspelt key, and the list */
        char hint[96] = "", list[HR_ERR_MSG_MAX / 2] = "";
        if (known) {
            snprintf(list, sizeof list, " (parameters: %s)", known[0] ? known : "none");
            if (sp->key)
                hr_did_you_mean(hint, sizeof hint, sp->key, known);
        }
        if (sp->key)
            return hr_err_set(err, HR_EUSAGE, "%s '%s' has no parameter '%s'%s%s", what,
                              spec->name, sp->key, hint, list);
        return hr_err_set(err, HR_EUSAGE, "%s '%s' takes no positional value '%s'%s", what,
                          spec->name, sp->value, list);
    }
    return HR_OK;
}

int hr_parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return HR_EUSAGE;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return HR_EUSAGE;
    *out = v;
    return HR_OK;
}

int hr_parse_size(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return HR_EUSAGE;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return HR_EUSAGE;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: return HR_EUSAGE;
    }
    if (*end == 'i' && shift) /* accept KiB-style "Ki" */
        end++;
    if ((*end == 'B' || *end == 'b') && shift)
        end++;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return HR_EUSAGE;
    *out = (uint64_t)v << shift;
    return HR_OK;
}

/* Only a plain decimal ("2", "1.5", ".5", "-0.25") is handed to strtod: strtod alone would also
 * take "nan", "inf", hex floats, exponents and leading whitespace, and a NaN passes every range
 * test a caller writes as "v < lo || v > hi". */
static int plain_decimal(const char *s)
{
    const char *p = s + (*s == '-');
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    if (*p == 'x' || *p == 'X') /* a factor: "2x" */
        p++;
    return digits > 0 && *p == '\0';
}

int hr_parse_double(const char *s, double *out)
{
    if (!s || !plain_decimal(s))
        return HR_EUSAGE;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || !isfinite(v)) /* too many digits for a double, either way */
        return HR_EUSAGE;
    *out = v;
    return HR_OK;
}

char *hr_spec_keys_of(const char *description, char *out, size_t cap)
{
    size_t o = 0;
    if (cap)
        out[0] = '\0';
    for (const char *p = description; p && *p;) {
        if (!(isalnum((unsigned char)*p) || *p == '_')) {
            p++;
            continue;
        }
        const char *w = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (*p != '=' || (w > description && w[-1] == '='))
            continue;
        int n = snprintf(out + o, cap - o, "%s%.*s", o ? ", " : "", (int)(p - w), w);
        if (n < 0 || (size_t)n >= cap - o) {
            out[o] = '\0';
            break;
        }
        o += (size_t)n;
    }
    return out;
}
