/* hr_gen.h: synthetic trace generators: one vtable, a registry, deterministic for a given seed. */
#ifndef HR_GEN_H
#define HR_GEN_H

#include "hr_trace.h"

typedef struct hr_gen_vt {
    const char *name;    /* "random", "churn", ... */
    const char *summary; /* one line */
    const char *params;  /* one line: "events=N seed=S kind=alloc|graph" */
    /* Write the generated events to w (whose header the caller made with kind_of()). The spec
     * holds key=value parameters; the generator marks what it uses. */
    int (*run)(hr_trace_writer_t *w, hr_spec_t *spec, hr_err_t *err);
    /* The trace kind (HR_KIND_*) this spec produces, or a negative HR_E* code with err set
     * when the spec asks for a kind that does not exist. */
    int (*kind_of)(hr_spec_t *spec, hr_err_t *err);
} hr_gen_vt;

const hr_gen_vt *const *hr_gen_registry(void); /* NULL-terminated */

/* For generators: parameter `key` as a whole number (K/M/G suffixes) or `dflt` when absent; a
 * value that is not one fails with HR_EUSAGE naming the generator and the parameter. */
int hr_gen_param_u64(hr_spec_t *spec, const char *key, uint64_t dflt, uint64_t *out, hr_err_t *err);
/* The same, and outside lo..hi fails with HR_EUSAGE naming the generator, the parameter, its
 * value and the range. */
int hr_gen_param_range(hr_spec_t *spec, const char *key, uint64_t dflt, uint64_t lo, uint64_t hi,
                       uint64_t *out, hr_err_t *err);
const hr_gen_vt *hr_gen_by_name(const char *name);

/* Generate `spec` ("name:k=v,...") into out_path (written atomically). */
int hr_gen_run(const char *spec, const char *out_path, const hr_trace_write_opts_t *opts,
               hr_err_t *err);

/* Deterministic PRNG (splitmix64 seeding a xoshiro-style state) for generators and tests. */
typedef struct hr_rng {
    uint64_t s[4];
} hr_rng_t;
void hr_rng_seed(hr_rng_t *r, uint64_t seed);
uint64_t hr_rng_next(hr_rng_t *r);
/* Uniform in [0, n). n > 0. */
uint64_t hr_rng_below(hr_rng_t *r, uint64_t n);

#endif
