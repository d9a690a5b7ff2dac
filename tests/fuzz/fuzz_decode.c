/* fuzz_decode.c: libFuzzer target for the binary trace decoder. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hr_buf_t text;
    hr_buf_init(&text);
    int rc = fuzz_decode_text(data, size, 0, &text);
    fuzz_decode_text(data, size, 1, NULL);
    if (rc == 0) /* a trace the reader accepted must survive dump -> pack -> dump */
        fuzz_text_roundtrip((const char *)text.data, text.len);
    hr_buf_free(&text);
    return 0;
}
