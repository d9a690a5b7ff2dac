/* test_idmap.c: the recorders' address -> id map: insert, replace, find, delete under churn, and
 * key 0 (the empty-slot marker) is never found. */
#include "rec_idmap.h"
#include "tap.h"

#include <stdint.h>

int main(void)
{
    hr_idmap_t m;
    TAP_OK(hr_idmap_init(&m, 4) == 0, "init");
    uint64_t id = 7;
    unsigned fl = 9;
    TAP_OK(!hr_idmap_get(&m, 0, &id, &fl) && id == 7 && fl == 9, "key 0 is absent in an empty map");
    /* a heap's worth of 16-byte-aligned blocks, half of them freed again */
    const uintptr_t base = (uintptr_t)1 << 40;
    const uint64_t n = 20000;
    int ok = 1;
    for (uint64_t i = 0; i < n; i++)
        ok &= hr_idmap_put(&m, base + 16 * i, i, (unsigned)(i & 0xff)) == 0;
    for (uint64_t i = 0; i < n; i += 2)
        ok &= hr_idmap_take(&m, base + 16 * i, &id, &fl) == 1 && id == i && fl == (i & 0xff);
    TAP_OK(ok && m.count == n / 2, "put %llu, take every other one", (unsigned long long)n);
    size_t count = m.count;
    TAP_OK(!hr_idmap_get(&m, 0, NULL, NULL), "key 0 is absent in a map with empty slots");
    TAP_OK(!hr_idmap_take(&m, 0, NULL, NULL) && m.count == count,
           "taking key 0 removes nothing and leaves the count alone");
    TAP_OK(!hr_idmap_set_flags(&m, 0, 1), "key 0 has no flags to set");
    ok = 1;
    for (uint64_t i = 0; i < n; i++) {
        int got = hr_idmap_get(&m, base + 16 * i, &id, NULL);
        ok &= (i & 1) ? got == 1 && id == i : got == 0;
    }
    TAP_OK(ok, "every remaining key found, every taken one absent");
    TAP_OK(hr_idmap_put(&m, base + 16, 99, 1) == 0 && hr_idmap_get(&m, base + 16, &id, &fl) &&
               id == 99 && fl == 1 && m.count == count,
           "put replaces");
    hr_idmap_free(&m);
    return tap_done();
}
