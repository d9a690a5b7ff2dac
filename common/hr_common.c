/* hr_common.c: errors, buffers, CRC-32 and small helpers used by every layer. */
#include "hr_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* {==== Errors ==== */

const char *hr_strerror(int code)
{
    switch (code) {
    case HR_OK: return "success";
    case HR_EUSAGE: return "usage error";
    case HR_EFORMAT: return "bad input";
    case HR_ETRUNC: return "input cut short";
    case HR_EIO: return "I/O error";
    case HR_ENOMEM: return "out of memory";
    case HR_EVERSION: return "unsupported version";
    case HR_EINTERNAL: return "internal error";
    case HR_ECHECK: return "check failed";
    default: return "unknown error";
    }
}

/* A message cut to fit says so: "..." replaces its last characters (never half a UTF-8
 * character). */
static void mark_cut(char *msg, size_t size)
{
    size_t n = size - 4;
    while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
        n--;
    memcpy(msg + n, "...", 4);
}

int hr_err_vset(hr_err_t *err, int code, const char *fmt, va_list ap)
{
    if (err && err->code == HR_OK) {
        err->code = code;
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        if (n >= (int)sizeof err->msg)
            mark_cut(err->msg, sizeof err->msg);
    }
    return code;
}

int hr_err_set(hr_err_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hr_err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void hr_err_prefix(hr_err_t *err, const char *fmt, ...)
{
    if (!err || err->code == HR_OK)
        return;
    char pre[HR_ERR_MSG_MAX], old[HR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(pre);
    if (n >= sizeof err->msg)
        n = sizeof err->msg - 1;
    memcpy(err->msg, pre, n);
    size_t m = strlen(old);
    int cut = m > sizeof err->msg - 1 - n;
    if (cut)
        m = sizeof err->msg - 1 - n;
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = '\0';
    if (cut)
        mark_cut(err->msg, sizeof err->msg);
}

void hr_err_clear(hr_err_t *err)
{
    if (err) {
        err->code = HR_OK;
        err->msg[0] = '\0';
    }
}

int hr_exit_status(int code)
{
    switch (code) {
    case HR_OK: return 0;
    case HR_EUSAGE: return 1;
    case HR_EFORMAT:
    case HR_ETRUNC:
    case HR_EVERSION:
    case HR_ECHECK: return 2;
    default: return 3;
    }
}

/* {==== Buffers ==== */

void hr_buf_init(hr_buf_t *b) { b->data = NULL, b->len = 0, b->cap = 0; }

void hr_buf_free(hr_buf_t *b)
{
    free(b->data);
    hr_buf_init(b);
}

int hr_buf_reserve(hr_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return HR_ENOMEM;
    size_t need = b->len + extra + 1; /* room for a trailing NUL */
    if (need <= b->cap)
        return HR_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return HR_ENOMEM;
    b->data = p;
    b->cap = cap;
    return HR_OK;
}

int hr_buf_append(hr_buf_t *b, const void *p, size_t n)
{
    if (hr_buf_reserve(b, n))
        return HR_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return HR_OK;
}

int hr_buf_putc(hr_buf_t *b, int c)
{
    uint8_t ch = (uint8_t)c;
    return hr_buf_append(b, &ch, 1);
}

int hr_buf_printf(hr_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || hr_buf_reserve(b, (size_t)n))
        return HR_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return HR_OK;
}

/* {==== CRC-32 (reflected polynomial 0xEDB88320), table built on first use ==== */

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t hr_crc32(uint32_t crc, const void *p, size_t n)
{
    if (!crc_ready)
        crc_init();
    const uint8_t *s = p;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* {==== Small helpers ==== */

void *hr_map_grow(void *p, size_t *mapped, size_t bytes)
{
    void *q = *mapped ? mremap(p, *mapped, bytes, MREMAP_MAYMOVE)
                      : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
        return NULL;
    *mapped = bytes;
    return q;
}

int hr_env_switch(const char *name, int *on, hr_err_t *err)
{
    const char *v = getenv(name);
    *on = -1;
    if (!v || !v[0])
        return HR_OK;
    if ((v[0] != '0' && v[0] != '1') || v[1])
        return hr_err_set(err, HR_EUSAGE, "%s is '%s': it takes 0 (off) or 1 (on)", name, v);
    *on = v[0] == '1';
    return HR_OK;
}

int hr_tmp_template(char *buf, size_t cap, const char *name)
{
    const char *dir = getenv("TMPDIR");
    int n = snprintf(buf, cap, "%s/%s.XXXXXX", dir && *dir ? dir : "/tmp", name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int hr_read_file(const char *path, hr_buf_t *out, hr_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return hr_err_set(err, HR_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t tmp[65536];
    size_t n;
    int rc = HR_OK;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (hr_buf_append(out, tmp, n)) {
            rc = hr_err_set(err, HR_ENOMEM, "%s: out of memory reading the file", path);
            break;
        }
    }
    if (rc == HR_OK && ferror(f))
        rc = hr_err_set(err, HR_EIO, "%s: read error: %s", path, strerror(errno));
    fclose(f);
    if (rc == HR_OK && hr_buf_reserve(out, 0))
        rc = hr_err_set(err, HR_ENOMEM, "%s: out of memory", path);
    return rc;
}

char *hr_fmt_thousands(char *buf, size_t cap, uint64_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

void hr_fput_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

uint64_t hr_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Edit distance between a[0..n) and b[0..m) with adjacent transpositions (optimal string
 * alignment), for strings of at most 63 characters. */
static size_t edit_distance(const char *a, size_t n, const char *b, size_t m)
{
    size_t d[64][64];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

char *hr_did_you_mean(char *buf, size_t cap, const char *name, const char *names)
{
    return hr_did_you_mean_in(buf, cap, name, names, ", ");
}

char *hr_did_you_mean_in(char *buf, size_t cap, const char *name, const char *names,
                         const char *seps)
{
    size_t n = strlen(name), limit = n / 3 > 1 ? n / 3 : 1, best_d = limit + 1;
    const char *best = NULL;
    size_t best_len = 0;
    if (cap)
        buf[0] = '\0';
    if (n == 0 || n > 63)
        return buf;
    for (const char *p = names; *p;) {
        p += strspn(p, seps);
        size_t m = strcspn(p, seps);
        if (m == 0)
            break;
        if (m <= 63 && (m > n ? m - n : n - m) < best_d) {
            size_t d = edit_distance(name, n, p, m);
            if (d < best_d)
                best = p, best_len = m, best_d = d;
        }
        p += m;
    }
    if (best && cap)
        snprintf(buf, cap, " (did you mean '%.*s'?)", (int)best_len, best);
    return buf;
}
