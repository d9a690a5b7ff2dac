/* test_isolation.c: no allocator backend takes over the harness's own malloc, and the libc
 * backend's footprint is glibc's own accounting without the harness's share.
 *
 *   1. At start no external allocator library is in the process.
 *   2. libc footprint: its changes equal those of mallinfo2's arena + hblkhd, step by step, while
 *      only the backend allocates; its peak is the largest footprint seen (not under ASan, whose
 *      allocator stands in for glibc's).
 *   3. For every registered backend, after creating it and serving blocks through it: every C
 *      library allocation function (and mmap, sbrk, operator new ...) still resolves to what it
 *      resolved to before; no allocator API (mallocx, mallctl, mi_malloc, tc_malloc, ...) has
 *      entered the global scope; the harness's malloc is still glibc's (malloc_usable_size of a
 *      100-byte block is glibc's 104; glibc's accounting sees a 100000-byte block); tcmalloc and
 *      mimalloc say the harness's blocks are not theirs and the backend's blocks are; and the
 *      blocks of jemalloc, mimalloc and tcmalloc do not come from glibc: its accounting and the
 *      program break do not move while they serve 4 MB.
 *   4. At the end, libjemalloc was never loaded (the backend is a private copy); libmimalloc and
 *      libtcmalloc are, as expected, loaded.
 *   5. Controls: the same detector run in a child started with LD_PRELOAD=libtcmalloc sees malloc
 *      taken over (so the checks above can fail); a child that loads tcmalloc with RTLD_GLOBAL
 *      keeps glibc's malloc (the C library comes first in the global scope).
 */
#include "hr_alloc.h"
#include "tap.h"

#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

#ifdef HR_HAVE_JEMALLOC
size_t hr_je_sallocx(const void *p, int flags); /* the private copy (allocators/jemalloc.c) */
#endif

/* What the harness links against: these must keep resolving to the same definitions. */
static const char *const libc_names[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "malloc_usable_size", "mallinfo2", "malloc_trim", "mallopt",
    "malloc_info", "__libc_malloc", "__libc_free", "mmap", "munmap", "mremap", "sbrk", "brk",
    "pthread_create", "_Znwm", "_ZdlPv",
};
/* What must never become global. */
static const char *const foreign_names[] = {
    "mallocx", "sdallocx", "mallctl", "je_malloc", "malloc_conf", "mi_malloc", "mi_free",
    "mi_heap_new", "tc_malloc", "tc_free", "MallocExtension_GetNumericProperty",
};
#define NLIBC HR_ARRAY_LEN(libc_names)
static void *before[NLIBC];
/* Blocks whose malloc must happen: stored here, the compiler cannot elide the call (clang
 * removes a malloc/free pair whose block does not escape). */
static void *volatile sink;

static const char *owner(void *sym)
{
    Dl_info di;
    if (!sym)
        return "(undefined)";
    return dladdr(sym, &di) && di.dli_fname ? di.dli_fname : "(unknown)";
}

/* {==== Loaded objects ==== */

typedef struct found {
    const char *needle;
    int hits;
} found_t;

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    found_t *f = arg;
    if (info->dlpi_name && strstr(info->dlpi_name, f->needle))
        f->hits++;
    return 0;
}

static int loaded(const char *needle)
{
    found_t f = {needle, 0};
    dl_iterate_phdr(phdr_cb, &f);
    return f.hits;
}

/* {==== The detector ==== */

/* 1 if malloc & co still resolve as at start and nothing foreign is global. */
static int symbols_unchanged(char *why, size_t cap)
{
    for (size_t i = 0; i < NLIBC; i++) {
        void *now = dlsym(RTLD_DEFAULT, libc_names[i]);
        if (now != before[i]) {
            snprintf(why, cap, "%s now resolves to %s", libc_names[i], owner(now));
            return 0;
        }
    }
    for (size_t i = 0; i < HR_ARRAY_LEN(foreign_names); i++)
        if (dlsym(RTLD_DEFAULT, foreign_names[i])) {
            snprintf(why, cap, "%s is in the global scope (%s)", foreign_names[i],
                     owner(dlsym(RTLD_DEFAULT, foreign_names[i])));
            return 0;
        }
    snprintf(why, cap, "malloc from %s", owner(before[0]));
    return 1;
}

/* 1 if the process's malloc behaves as glibc's (not under ASan). */
static int malloc_is_glibc(size_t *usable)
{
    void *p = malloc(100);
    sink = p;
    *usable = p ? malloc_usable_size(p) : 0;
    struct mallinfo2 a = mallinfo2();
    void *q = malloc(100000);
    sink = q;
    struct mallinfo2 b = mallinfo2();
    int seen = q && b.uordblks + b.hblkhd >= a.uordblks + a.hblkhd + 100000;
    free(q);
    free(p);
    return *usable == 104 && seen;
}

/* The child of the LD_PRELOAD control: exit 0 if malloc is NOT glibc's. */
static int child_preloaded(void)
{
    const char *o = owner(dlsym(RTLD_DEFAULT, "malloc"));
    size_t usable;
    int glibc = malloc_is_glibc(&usable);
    printf("# child: malloc from %s, malloc_usable_size(malloc(100)) = %zu\n", o, usable);
    return !glibc && strstr(o, "tcmalloc") ? 0 : 1;
}

/* {==== 2. libc's footprint against mallinfo2 ==== */

#ifndef ASAN
static uint64_t mi_total(void)
{
    struct mallinfo2 m = mallinfo2();
    return (uint64_t)m.arena + (uint64_t)m.hblkhd;
}
#endif

static void libc_accounting(void)
{
#ifdef ASAN
    tap_skip("AddressSanitizer's allocator stands in for glibc's", "libc footprint vs mallinfo2");
#else
    hr_err_t err = {0, {0}};
    hr_alloc_t *a = NULL;
    if (!TAP_OK(hr_alloc_create(&a, "libc", &err) == HR_OK, "libc created (%s)", err.msg))
        return;
    enum { STEPS = 12, N = 64 };
    static void *blk[N];
    static size_t sz[N];
    int64_t dfoot[STEPS], dmi[STEPS];
    uint64_t seen_max = 0;
    hr_alloc_stats_t st;
    hr_alloc_get_stats(a, &st);
    uint64_t f0 = st.footprint, m0 = mi_total();
    for (int s = 0; s < STEPS; s++) {
        /* no glibc call but the backend's between the two readings */
        for (int i = 0; i < N; i++) {
            int k = (s * N + i) % N;
            switch ((s + i) % 6) {
            case 0:
            case 1:
                if (blk[k]) {
                    hr_alloc_free(a, blk[k], sz[k], HR_DOMAIN_NATIVE);
                    blk[k] = NULL;
                }
                break;
            case 2:
                sz[k] = 1000 + (size_t)(s * 977 + i * 131) % 60000;
                blk[k] = blk[k] ? hr_alloc_realloc(a, blk[k], sz[k] ? sz[k] : 1, sz[k],
                                                   HR_DOMAIN_NATIVE)
                                : hr_alloc_malloc(a, sz[k], HR_DOMAIN_NATIVE);
                break;
            case 3:
                if (!blk[k]) {
                    sz[k] = 200000 + (size_t)i * 5000; /* glibc maps these by themselves */
                    blk[k] = hr_alloc_calloc(a, sz[k], HR_DOMAIN_NATIVE);
                }
                break;
            case 4:
                if (blk[k]) { /* grow: mremap for mapped chunks, move out of the heap for others */
                    void *q = hr_alloc_realloc(a, blk[k], sz[k], sz[k] + 150000, HR_DOMAIN_NATIVE);
                    if (q)
                        blk[k] = q, sz[k] += 150000;
                }
                break;
            default:
                if (!blk[k]) {
                    sz[k] = 300000;
                    blk[k] = hr_alloc_aligned(a, 4096, sz[k], HR_DOMAIN_NATIVE);
                }
            }
        }
        hr_alloc_get_stats(a, &st);
        if (st.footprint > seen_max)
            seen_max = st.footprint;
        dfoot[s] = (int64_t)st.footprint - (int64_t)f0;
        dmi[s] = (int64_t)mi_total() - (int64_t)m0;
    }
    int same = 1;
    for (int s = 0; s < STEPS; s++)
        if (dfoot[s] != dmi[s]) {
            same = 0;
            TAP_DIAG("step %d: footprint moved by %lld, mallinfo2 by %lld", s,
                     (long long)dfoot[s], (long long)dmi[s]);
        }
    TAP_OK(same, "libc: over %d steps (heap chunks, mapped chunks, mremap, aligned) the footprint "
           "moves exactly as mallinfo2 arena + hblkhd (last: %lld bytes)", STEPS,
           (long long)dmi[STEPS - 1]);
    TAP_OK(st.peak_footprint >= seen_max && st.peak_footprint > 0,
           "libc: peak footprint %llu >= largest seen %llu", (unsigned long long)st.peak_footprint,
           (unsigned long long)seen_max);
    hr_buf_t text;
    hr_buf_init(&text);
    TAP_OK(hr_alloc_stats_text(a, &text, &err) == HR_OK && text.len &&
               strstr((const char *)text.data, "footprint: exact"),
           "libc: the statistics text says the footprint is counted exactly");
    hr_buf_free(&text);
    /* The harness's own large buffer is not counted; mallinfo2 counts it. */
    uint64_t before_fp = st.footprint, before_mi = mi_total();
    void *own = malloc(1 << 20);
    sink = own;
    hr_alloc_get_stats(a, &st);
    uint64_t after_mi = mi_total();
    TAP_OK(own && st.footprint == before_fp && after_mi >= before_mi + (1 << 20),
           "libc: a 1 MiB buffer of the harness's own is left out (footprint %llu -> %llu; "
           "mallinfo2 +%llu)", (unsigned long long)before_fp, (unsigned long long)st.footprint,
           (unsigned long long)(after_mi - before_mi));
    free(own);
    for (int k = 0; k < N; k++)
        if (blk[k])
            hr_alloc_free(a, blk[k], sz[k], HR_DOMAIN_NATIVE);
    hr_alloc_destroy(a);
#endif
}

/* {==== 3. Each backend ==== */

static int is_external(const char *name)
{
    return !strcmp(name, "jemalloc") || !strcmp(name, "mimalloc") || !strcmp(name, "tcmalloc");
}

static void check_backend(const hr_alloc_vt *vt)
{
    const char *name = vt->name;
    hr_err_t err = {0, {0}};
    hr_alloc_t *a = NULL;
    if (!TAP_OK(hr_alloc_create(&a, name, &err) == HR_OK, "%s: created (%s)", name, err.msg))
        return;
    enum { NB = 1000, BS = 4000 };
    void **b = calloc(NB, sizeof *b); /* before the readings below */
    struct mallinfo2 m0 = mallinfo2();
    void *brk0 = sbrk(0);
    int served = 1;
    for (int i = 0; i < NB; i++)
        if (!(b[i] = hr_alloc_malloc(a, BS, HR_DOMAIN_OBJ)))
            served = 0;
        else
            memset(b[i], 0x5a, BS);
    struct mallinfo2 m1 = mallinfo2();
    void *brk1 = sbrk(0);

    char why[256];
    TAP_OK(served && symbols_unchanged(why, sizeof why),
           "%s: malloc & co resolve as before, no allocator API is global (%s)", name, why);
#ifndef ASAN
    size_t usable;
    int glibc = malloc_is_glibc(&usable);
    TAP_OK(glibc,
           "%s: the harness's malloc is still glibc's (usable size of 100 bytes: %zu; glibc's "
           "accounting sees its blocks)", name, usable);
#else
    tap_skip("AddressSanitizer replaces glibc's malloc", "%s: the harness's malloc is glibc's",
             name);
#endif
    if (is_external(name)) {
        long long moved = (long long)(m1.arena + m1.hblkhd + m1.uordblks) -
                          (long long)(m0.arena + m0.hblkhd + m0.uordblks);
        TAP_OK(moved == 0 && brk1 == brk0,
               "%s: %d blocks of %d bytes come from elsewhere than glibc (its accounting moved "
               "by %lld, the program break by %ld)", name, NB, BS, moved,
               (long)((char *)brk1 - (char *)brk0));
    } else if (!strcmp(name, "libc")) {
#ifndef ASAN
        TAP_OK(m1.uordblks + m1.hblkhd >= m0.uordblks + m0.hblkhd + (size_t)NB * BS,
               "libc: its blocks are glibc's (in-use bytes +%zu)",
               (m1.uordblks + m1.hblkhd) - (m0.uordblks + m0.hblkhd));
#endif
    }

    void *mine = malloc(64);
    sink = mine;
#ifdef HR_HAVE_TCMALLOC
    if (!strcmp(name, "tcmalloc")) {
        void *h = dlopen(HR_TCMALLOC_LIB, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        int (*own)(const void *) = NULL;
        void *sym = h ? dlsym(h, "MallocExtension_GetOwnership") : NULL;
        memcpy(&own, &sym, sizeof sym);
        /* MallocExtension_Ownership: 1 owned, 2 not owned */
        TAP_OK(own && own(mine) == 2 && own(b[0]) == 1,
               "tcmalloc: the harness's block is not tcmalloc's (%d), the backend's is (%d)",
               own ? own(mine) : -1, own ? own(b[0]) : -1);
        TAP_OK(loaded("tcmalloc") == 1, "tcmalloc: its library is loaded (RTLD_LOCAL)");
    }
#endif
#ifdef HR_HAVE_MIMALLOC
    if (!strcmp(name, "mimalloc")) {
        void *h = dlopen(HR_MIMALLOC_LIB, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        _Bool (*in)(const void *) = NULL;
        void *sym = h ? dlsym(h, "mi_is_in_heap_region") : NULL;
        memcpy(&in, &sym, sizeof sym);
#ifndef ASAN
        int in_mine = in ? in(mine) : -1, in_b = in ? in(b[0]) : -1;
        TAP_OK(in_mine == 0 && in_b == 1,
               "mimalloc: the harness's block is outside mimalloc's heap (%d), the backend's "
               "inside (%d)", in_mine, in_b);
#else
        (void)in;
        tap_skip("under ASan mimalloc cannot map at its hint addresses (ASan's shadow is there) "
                 "and its segment map does not cover where it maps instead",
                 "mimalloc: the harness's block is outside mimalloc's heap, the backend's inside");
#endif
        TAP_OK(loaded("mimalloc") == 1, "mimalloc: its library is loaded (RTLD_LOCAL)");
    }
#endif
#ifdef HR_HAVE_JEMALLOC
    if (!strcmp(name, "jemalloc"))
        TAP_OK(hr_je_sallocx(b[0], 0) >= BS,
               "jemalloc: the backend's block is the private jemalloc's (size class %zu)",
               hr_je_sallocx(b[0], 0));
#endif
    free(mine);
    for (int i = 0; i < NB; i++)
        if (b[i])
            hr_alloc_free(a, b[i], BS, HR_DOMAIN_OBJ);
    free(b);
    hr_alloc_destroy(a);
}

/* {==== 5. Controls in child processes ==== */

static void controls(const char *self)
{
#if defined(ASAN) || !defined(HR_HAVE_TCMALLOC)
    (void)self;
#ifdef ASAN
    const char *why1 = "AddressSanitizer must be the first library of the process";
    const char *why2 = "AddressSanitizer's interceptors hide what RTLD_GLOBAL would do";
#else
    const char *why1 = "tcmalloc not built", *why2 = why1;
#endif
    tap_skip(why1, "control: LD_PRELOAD=libtcmalloc does take malloc over, and the detector sees it");
    tap_skip(why2, "control: tcmalloc loaded with RTLD_GLOBAL does not take malloc over");
#else
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LD_PRELOAD", HR_TCMALLOC_LIB, 1);
        execl(self, self, "--child-preloaded", (char *)NULL);
        _exit(99);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    TAP_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "control: with LD_PRELOAD=%s the same detector sees malloc taken over (status %d)",
           HR_TCMALLOC_LIB, WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        void *h = dlopen(HR_TCMALLOC_LIB, RTLD_NOW | RTLD_GLOBAL);
        size_t usable;
        int ok = h && dlsym(RTLD_DEFAULT, "malloc") == before[0] && malloc_is_glibc(&usable) &&
                 dlsym(RTLD_DEFAULT, "tc_malloc") != NULL; /* it did become global */
        _exit(ok ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    TAP_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "control: %s loaded with RTLD_GLOBAL in a child leaves malloc to glibc (it comes "
           "first in the global scope)", HR_TCMALLOC_LIB);
#endif
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child-preloaded") == 0)
        return child_preloaded();
    for (size_t i = 0; i < NLIBC; i++)
        before[i] = dlsym(RTLD_DEFAULT, libc_names[i]);
    TAP_OK(before[0] != NULL, "malloc resolves to %s", owner(before[0]));
    TAP_OK(!loaded("jemalloc") && !loaded("mimalloc") && !loaded("tcmalloc"),
           "no external allocator library is loaded at start");
    libc_accounting();
    for (const hr_alloc_vt *const *v = hr_alloc_registry(); *v; v++)
        check_backend(*v);
#ifdef HR_HAVE_JEMALLOC
    const char *je = "the backend is a private copy";
#else
    const char *je = "jemalloc not built";
#endif
    TAP_OK(!loaded("libjemalloc"), "libjemalloc was never loaded (%s)", je);
    controls("/proc/self/exe");
    return tap_done();
}
