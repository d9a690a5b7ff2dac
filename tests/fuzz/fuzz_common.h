/* fuzz_common.h: helpers shared by the fuzz targets (decode all, text round trip). */
#ifndef HR_FUZZ_COMMON_H
#define HR_FUZZ_COMMON_H

#include "hr_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A per-process scratch file for the writer (traces are files). */
static const char *fuzz_scratch(int k)
{
    static char path[2][128];
    if (!path[k][0])
        snprintf(path[k], sizeof path[k], "/tmp/hr_fuzz_%ld_%d.hrt", (long)getpid(), k);
    return path[k];
}

/* Decode a whole trace; on success append its text form to *text. Returns the reader's code and,
 * in *err_out when not NULL, its message. `threads` as hr_trace_read_opts_t.threads. */
static int fuzz_decode_text(const void *data, size_t len, int partial, hr_buf_t *text,
                            int threads, hr_err_t *err_out)
{
    hr_err_t err = {0};
    hr_trace_read_opts_t o = {.partial = partial, .threads = threads};
    hr_trace_reader_t *r;
    int rc = hr_trace_open_mem(&r, data, len, "fuzz", &o, &err);
    if (err_out)
        *err_out = err;
    if (rc)
        return rc;
    if (text)
        hr_trace_format_header(text, hr_trace_header(r));
    static hr_event_t evs[257];
    size_t n;
    uint64_t total = 0;
    while ((rc = hr_trace_read(r, evs, 257, &n, &err)) == 0 && n > 0) {
        total += n;
        for (size_t i = 0; text && i < n; i++)
            hr_trace_format_event(text, &evs[i]);
    }
    if (rc == 0 && hr_trace_status(r)->events != total)
        abort(); /* the status must count exactly what was delivered */
    if (rc != 0 && (!err.msg[0] || err.code != rc))
        abort(); /* every error carries a message */
    if (err_out)
        *err_out = err;
    hr_trace_close(r);
    return rc;
}

/* Property: a text the packer accepted dumps to a text that packs to the same binary. */
static void fuzz_text_roundtrip(const char *text, size_t len)
{
    hr_err_t err = {0};
    hr_trace_write_opts_t o = {.frame_target = 128};
    if (hr_trace_pack_buf("fuzz.txt", text, len, fuzz_scratch(0), &o, &err) != 0) {
        if (!err.msg[0])
            abort();
        return;
    }
    hr_buf_t bin, t1, bin2;
    hr_buf_init(&bin), hr_buf_init(&t1), hr_buf_init(&bin2);
    if (hr_read_file(fuzz_scratch(0), &bin, &err) ||
        fuzz_decode_text(bin.data, bin.len, 0, &t1, 0, NULL) != 0)
        abort(); /* the writer produced something its reader rejects */
    if (hr_trace_pack_buf("t1", (const char *)t1.data, t1.len, fuzz_scratch(1), &o, &err) ||
        hr_read_file(fuzz_scratch(1), &bin2, &err) || bin.len != bin2.len ||
        memcmp(bin.data, bin2.data, bin.len) != 0)
        abort(); /* dump is not the inverse of pack */
    hr_buf_free(&bin), hr_buf_free(&t1), hr_buf_free(&bin2);
}

#endif
