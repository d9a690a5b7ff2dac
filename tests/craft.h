/* craft.h: binary traces built by hand, for tests of what no writer produces (double frees, ids
 * never allocated, bad frames): a real writer's header of the wanted kind, then raw payloads
 * compressed into zstd frames here.
 *
 *   hr_buf_t b;
 *   craft_header(HR_KIND_ALLOC, scratch_path, &b);       // header bytes (b is initialised)
 *   craft_frame(&b, payload, n, 1);                       // FRAME ... END records, checksummed
 */
#ifndef HR_TESTS_CRAFT_H
#define HR_TESTS_CRAFT_H

#include "hr_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

/* The header of an empty trace of `kind`, written through the writer at scratch_path; returns its
 * length in bytes. */
static size_t craft_header(int kind, const char *scratch_path, hr_buf_t *out)
{
    hr_trace_header_t h;
    hr_trace_header_init(&h, kind);
    hr_trace_writer_t *w;
    hr_err_t err = {0};
    hr_buf_t b;
    hr_buf_init(&b);
    if (hr_trace_writer_open(&w, scratch_path, &h, NULL, &err) ||
        hr_trace_writer_close(w, &err) || hr_read_file(scratch_path, &b, &err)) {
        fprintf(stderr, "craft_header: %s\n", err.msg);
        exit(99);
    }
    hr_trace_header_free(&h);
    size_t hl = 8 + (b.data[4] | (size_t)b.data[5] << 8);
    hr_buf_init(out);
    hr_buf_append(out, b.data, hl);
    hr_buf_free(&b);
    return hl;
}

/* Append `payload` as one zstd frame, with or without zstd's content checksum. */
static void craft_frame(hr_buf_t *out, const uint8_t *payload, size_t n, int checksum)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum);
    size_t bound = ZSTD_compressBound(n);
    hr_buf_reserve(out, bound);
    size_t z = ZSTD_compress2(c, out->data + out->len, bound, payload, n);
    if (ZSTD_isError(z)) {
        fprintf(stderr, "craft_frame: %s\n", ZSTD_getErrorName(z));
        exit(99);
    }
    out->len += z;
    ZSTD_freeCCtx(c);
}

#endif
