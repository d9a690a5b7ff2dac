/* fuzz_text.c: libFuzzer target for the text-form parser (pack). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_text_roundtrip((const char *)data, size);
    return 0;
}
