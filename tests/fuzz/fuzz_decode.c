/* fuzz_decode.c: libFuzzer target for the binary trace decoder, with and without its prefetch
 * thread. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hr_buf_t text, text2;
    hr_buf_init(&text);
    hr_buf_init(&text2);
    hr_err_t e1, e2;
    int rc = fuzz_decode_text(data, size, 0, &text, HR_READ_NO_THREADS, &e1);
    /* with the prefetch thread: the same text, the same error, byte for byte */
    int rc2 = fuzz_decode_text(data, size, 0, &text2, 1, &e2);
    if (rc != rc2 || strcmp(e1.msg, e2.msg) != 0 || text.len != text2.len ||
        (text.len && memcmp(text.data, text2.data, text.len) != 0))
        abort();
    hr_buf_free(&text2);
    fuzz_decode_text(data, size, 1, NULL, 0, NULL);
    if (rc == 0) /* a trace the reader accepted must survive dump -> pack -> dump */
        fuzz_text_roundtrip((const char *)text.data, text.len);
    hr_buf_free(&text);
    return 0;
}
