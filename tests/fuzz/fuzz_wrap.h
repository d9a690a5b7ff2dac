/* fuzz_wrap.h: for the differential fuzz targets (fuzz_cursor, fuzz_lane): CHECK, which aborts
 * on a broken property, and a fuzz input as the payload of a trace's single data frame, so that
 * mutations reach the event grammar instead of dying at a frame's checksum. */
#ifndef HR_FUZZ_WRAP_H
#define HR_FUZZ_WRAP_H

#include "hr_trace.h"
#include "trace_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: broken: %s\n", __FILE__, __LINE__, #cond);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A trace of `kind` whose single data frame holds `payload` (checksummed, as writers make them);
 * out has room for 64 + ZSTD_compressBound(len) bytes. Returns the trace's length. */
static size_t wrap_payload(int kind, const uint8_t *payload, size_t len, uint8_t *out, size_t cap)
{
    static ZSTD_CCtx *cctx; /* kept for the process: one per input would dominate the run */
    uint8_t *h = out;
    size_t plen = HR_HEADER_TAG_LEN + 2 + 1 + 1 + 1 + 4;
    hr_put_le32(h, HR_HEADER_SKIP_MAGIC);
    hr_put_le32(h + 4, (uint32_t)plen);
    uint8_t *p = h + 8;
    memcpy(p, HR_HEADER_TAG, HR_HEADER_TAG_LEN);
    p[8] = HR_TRACE_VERSION, p[9] = 0;
    p[10] = (uint8_t)kind, p[11] = 0;
    p[12] = 0; /* no metadata */
    hr_put_le32(p + 13, hr_crc32(0, p, 13));
    size_t hlen = 8 + plen;
    if (!cctx) {
        cctx = ZSTD_createCCtx();
        CHECK(cctx);
    }
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    size_t z = ZSTD_compress2(cctx, out + hlen, cap - hlen, payload, len);
    CHECK(!ZSTD_isError(z));
    return hlen + z;
}

#endif
