/* footprint.c: a C program with a known heap, for the native recorder's footprint test.
 *
 * It allocates, touches and frees a deterministic mix of blocks (many small ones from glibc's
 * heap, some medium ones, and large ones above glibc's mmap threshold), about 48 MiB at its
 * peak, and prints how much its resident set grew: peak RSS (VmHWM) minus the RSS at the start
 * of main, in bytes. Every byte it allocates is written, so the resident set follows the heap.
 * Usage: footprint [SCALE]   (SCALE multiplies the sizes; default 1)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0) {
            kb = strtol(line + n, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return kb;
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static void *touch(size_t n)
{
    char *p = malloc(n);
    if (!p) {
        perror("malloc");
        exit(1);
    }
    memset(p, 0x5a, n);
    return p;
}

#define SMALL 60000
#define MEDIUM 300
#define LARGE 12

int main(int argc, char **argv)
{
    int scale = argc > 1 ? atoi(argv[1]) : 1;
    if (scale < 1)
        scale = 1;
    long base = status_kb("VmRSS:");
    static void *small[SMALL], *medium[MEDIUM], *large[LARGE];
    /* ~24 MiB of small blocks (16 B .. 784 B), then every third one freed: holes in the heap */
    for (int i = 0; i < SMALL; i++)
        small[i] = touch((size_t)scale * (16 + 16 * (next() % 49)));
    for (int i = 0; i < SMALL; i += 3) {
        free(small[i]);
        small[i] = NULL;
    }
    /* ~9 MiB of medium blocks (4 KiB .. 60 KiB): some fill the holes, most extend the heap */
    for (int i = 0; i < MEDIUM; i++)
        medium[i] = touch((size_t)scale * 4096 * (1 + next() % 15));
    /* 12 large blocks of 1 .. 2 MiB: glibc maps each separately */
    for (int i = 0; i < LARGE; i++)
        large[i] = touch((size_t)scale * ((1u << 20) + 4096 * (next() % 256)));
    long hwm = status_kb("VmHWM:");
    for (int i = 0; i < LARGE; i++)
        free(large[i]);
    for (int i = 0; i < MEDIUM; i++)
        free(medium[i]);
    for (int i = 0; i < SMALL; i++)
        free(small[i]);
    if (base < 0 || hwm < 0) {
        fprintf(stderr, "footprint: cannot read /proc/self/status\n");
        return 1;
    }
    printf("%ld\n", (hwm - base) * 1024);
    return 0;
}
