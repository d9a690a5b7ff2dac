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

int hr_err_vset(hr_err_t *err, int code, const char *fmt, va_list ap)
{
    if (err && err->code == HR_OK) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
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
    if (m > sizeof err->msg - 1 - n)
        m = sizeof err->msg - 1 - n;
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = '\0';
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
