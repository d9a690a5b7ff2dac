/* hr_common.h: error reporting, growable buffers, varints and checksums shared by every layer. */
#ifndef HR_COMMON_H
#define HR_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define HR_LIKELY(x)   __builtin_expect(!!(x), 1)
#define HR_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define HR_INLINE static inline __attribute__((always_inline))
#else
#define HR_LIKELY(x)   (x)
#define HR_UNLIKELY(x) (x)
#define HR_PRINTF(f, a)
#define HR_INLINE static inline
#endif

#define HR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* {====================================================================
 * Errors
 *
 * Library functions return 0 on success or a negative hr_code_t, and write a message for people
 * into a caller-owned hr_err_t (which may be NULL when the caller does not care). The message
 * carries the context: file, byte offset, event index, backend name. Library code never prints.
 * ==================================================================== */
typedef enum hr_code {
    HR_OK = 0,
    HR_EUSAGE = -1,     /* the caller asked for something that does not exist or does not fit */
    HR_EFORMAT = -2,    /* bad input: malformed, corrupt or inconsistent trace or text */
    HR_ETRUNC = -3,     /* bad input: the input ends before its end record (cut short) */
    HR_EIO = -4,        /* an operating-system call failed (open, read, write, mmap, ...) */
    HR_ENOMEM = -5,     /* out of memory */
    HR_EVERSION = -6,   /* bad input: a format version or feature this build does not know */
    HR_EINTERNAL = -7,  /* a library failed (zstd, Lua, Python) or an invariant broke */
    HR_ECHECK = -8      /* a replay check failed (use after free, negative refcount, mismatch) */
} hr_code_t;

#define HR_ERR_MSG_MAX 4096

typedef struct hr_err {
    int code;                     /* the hr_code_t of the first error recorded, HR_OK if none */
    char msg[HR_ERR_MSG_MAX];     /* one line, no trailing newline */
} hr_err_t;

/* Name of a code ("bad input", "I/O error", ...). Never NULL. */
const char *hr_strerror(int code);

/* Record an error and return `code`, so callers can write `return hr_err_set(err, ...)`.
 * A NULL err is allowed. The first error wins: a later call does not overwrite the message. */
int hr_err_set(hr_err_t *err, int code, const char *fmt, ...) HR_PRINTF(3, 4);
int hr_err_vset(hr_err_t *err, int code, const char *fmt, va_list ap);
/* Prefix the recorded message with more context ("trace.hrt: " + msg). */
void hr_err_prefix(hr_err_t *err, const char *fmt, ...) HR_PRINTF(2, 3);
void hr_err_clear(hr_err_t *err);

/* Process exit status for an error code: 1 usage, 2 bad input, 3 anything else. */
int hr_exit_status(int code);

/* {====================================================================
 * Growable byte buffer
 * Invariant: len <= cap; data is NULL only when cap == 0. Owned by whoever embeds it.
 * ==================================================================== */
typedef struct hr_buf {
    uint8_t *data; /* owned */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
} hr_buf_t;

void hr_buf_init(hr_buf_t *b);
void hr_buf_free(hr_buf_t *b);           /* accepts a zeroed or already freed buffer */
int hr_buf_reserve(hr_buf_t *b, size_t extra); /* ensure cap >= len + extra; HR_ENOMEM on failure */
int hr_buf_append(hr_buf_t *b, const void *p, size_t n);
int hr_buf_printf(hr_buf_t *b, const char *fmt, ...) HR_PRINTF(2, 3); /* appends, keeps a NUL after len */
int hr_buf_putc(hr_buf_t *b, int c);

/* {====================================================================
 * LEB128 varints (unsigned, little-endian base 128, at most 10 bytes for 64 bits)
 * ==================================================================== */
#define HR_VARINT_MAX 10

HR_INLINE size_t hr_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Decode a varint from [*pp, end). Returns 1 and advances *pp on success; 0 if the input ends
 * inside the varint; -1 if it is longer than 10 bytes or overflows 64 bits. */
HR_INLINE int hr_varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (HR_LIKELY(p < end && p[0] < 0x80)) { /* fast path: one byte */
        *out = p[0];
        *pp = p + 1;
        return 1;
    }
    /* Two and three bytes (sizes, ids far back) without the general loop's bounds and overflow
     * checks per byte: they cannot overflow, and the bytes are known to be there. */
    if (HR_LIKELY(end - p >= 3)) {
        uint64_t v = (uint64_t)(p[0] & 0x7f) | (uint64_t)(p[1] & 0x7f) << 7;
        if (p[1] < 0x80) {
            *out = v;
            *pp = p + 2;
            return 1;
        }
        if (p[2] < 0x80) {
            *out = v | (uint64_t)p[2] << 14;
            *pp = p + 3;
            return 1;
        }
    }
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (p >= end)
            return 0;
        uint8_t b = *p++;
        if (shift == 63 && b > 1)
            return -1;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *out = v;
            *pp = p;
            return 1;
        }
    }
    return -1;
}

/* {====================================================================
 * Checksums and small helpers
 * ==================================================================== */
uint32_t hr_crc32(uint32_t crc, const void *p, size_t n); /* IEEE 802.3 CRC-32, start with 0 */

/* Read a whole file into a buffer (for small inputs: text traces, scripts). */
int hr_read_file(const char *path, hr_buf_t *out, hr_err_t *err);

/* Format n with thousands separators into buf ("12,345"); returns buf. */
char *hr_fmt_thousands(char *buf, size_t cap, uint64_t n);
/* For a message about an unknown name: " (did you mean 'X'?)" in buf when one of `names` (a list
 * separated by commas and/or spaces) is within an edit distance of a third of name's length
 * (at least 1; two adjacent characters swapped count as one edit), else "". Returns buf. The
 * Lua side calls it too (hr._did_you_mean). */
char *hr_did_you_mean(char *buf, size_t cap, const char *name, const char *names);
/* The same with the names separated by any of the characters of `seps`. */
char *hr_did_you_mean_in(char *buf, size_t cap, const char *name, const char *names,
                         const char *seps);

/* Write s as a JSON string literal (quotes, backslash and control characters escaped). */
void hr_fput_json_string(FILE *f, const char *s);

/* Grow (or create, when *mapped is 0) the anonymous private mapping p of *mapped bytes to
 * `bytes`, with mremap: pages move instead of being copied, and the new part reads as zero and
 * costs nothing until written. For the harness's own tables, which must not live in malloc's
 * heap (a replay may be measuring it). Returns the mapping (*mapped = bytes), or NULL when the
 * kernel says no (p and *mapped unchanged). */
void *hr_map_grow(void *p, size_t *mapped, size_t bytes);

/* An on/off switch from the environment: *on = -1 when `name` is unset or empty, else 0 or 1 for
 * "0" or "1"; any other value is HR_EUSAGE naming the variable and its value. */
int hr_env_switch(const char *name, int *on, hr_err_t *err);

/* A mkstemp/mkdtemp template for a temporary file or folder: "$TMPDIR/NAME.XXXXXX" ("/tmp" when
 * TMPDIR is unset or empty). Returns 0, or -1 when it does not fit in cap bytes. */
int hr_tmp_template(char *buf, size_t cap, const char *name);

/* Monotonic clock in nanoseconds. */
uint64_t hr_now_ns(void);


/* {====================================================================
 * Memory domains: CPython's PEP 445 domains plus "native" (malloc from any program).
 * Shared vocabulary of the trace format and the allocator family.
 * ==================================================================== */
typedef enum hr_domain {
    HR_DOMAIN_RAW = 0,    /* PyMem_RawMalloc and friends: libc in CPython */
    HR_DOMAIN_MEM = 1,    /* PyMem_Malloc: pymalloc since 3.6 */
    HR_DOMAIN_OBJ = 2,    /* PyObject_Malloc: pymalloc */
    HR_DOMAIN_NATIVE = 3, /* malloc/calloc/realloc/free of a native program */
    HR_DOMAIN_COUNT = 4
} hr_domain_t;

const char *hr_domain_name(int domain); /* "raw", "mem", "obj", "native", or "?" */

/* {====================================================================
 * Spec strings: "name", "name:k=v,k=v", "name:v1,v2,v3" (positional), or a mix.
 * Used to select and parameterise allocators and collectors from the CLI and Lua.
 * ==================================================================== */
#define HR_SPEC_MAX_PARAMS 16

typedef struct hr_spec_param {
    const char *key;   /* NULL for a positional value; points into hr_spec_t.storage */
    const char *value; /* never NULL; points into hr_spec_t.storage */
    int used;          /* set by hr_spec_get*; hr_spec_check_unused reports the rest */
} hr_spec_param_t;

typedef struct hr_spec {
    const char *name;                          /* backend name; points into storage */
    hr_spec_param_t params[HR_SPEC_MAX_PARAMS];
    int nparams;
    char storage[512];                         /* a NUL-separated copy of the spec string */
} hr_spec_t;

/* Parse `text` ("what" names the family in messages, e.g. "allocator"). A key given twice is
 * an error (HR_EUSAGE naming the spec and the key). */
int hr_spec_parse(hr_spec_t *spec, const char *text, const char *what, hr_err_t *err);
/* Find key=value (marks it used). Returns the value or NULL when absent. */
const char *hr_spec_get(hr_spec_t *spec, const char *key);
/* Positional value number `i` (0-based) among the values without a key, or NULL. */
const char *hr_spec_positional(hr_spec_t *spec, int i);
/* Parse an unsigned size with an optional K/M/G suffix (powers of 1024). */
int hr_parse_size(const char *s, uint64_t *out);
/* Parse an unsigned decimal integer. */
int hr_parse_u64(const char *s, uint64_t *out);
/* Parse a plain decimal ("1.5", ".5", "-2"), optionally written as a factor ("2x"), into a
 * finite double. No exponent, hex, "inf", "nan" or whitespace: HR_EUSAGE. */
int hr_parse_double(const char *s, double *out);
/* Fail with HR_EUSAGE naming the first parameter no backend function asked for; with `known`
 * (the parameter names, separated by commas or spaces; NULL: not said) the message suggests the
 * nearest one (hr_did_you_mean) and lists them. */
int hr_spec_check_unused(const hr_spec_t *spec, const char *what, const char *known,
                         hr_err_t *err);
/* The parameter names of a one-line description such as "trigger=F (default 2x) min=SIZE":
 * every word directly followed by '=', as "trigger, min" in out ("" when none). Returns out. */
char *hr_spec_keys_of(const char *description, char *out, size_t cap);

#endif /* HR_COMMON_H */
