/* tap.h: a tiny Test Anything Protocol helper for the C unit tests (meson runs them as 'tap'). */
#ifndef HR_TAP_H
#define HR_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

#define TAP_OK(cond, ...) tap_ok_((cond) != 0, __FILE__, __LINE__, __VA_ARGS__)

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static inline int tap_ok_(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%sok %d - ", ok ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!ok) {
        tap_failed++;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return ok;
}

/* A check that cannot run here: "ok N - description # SKIP reason". */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline void tap_skip(const char *reason, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("ok %d - ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" # SKIP %s\n", reason);
    fflush(stdout);
}

/* DIR/NAME in one of four buffers used in turn, so one expression may hold a few such paths
 * (a test program's files in its temporary folder). */
static inline const char *tap_path(const char *dir, const char *name)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* A diagnostic: every line of the message gets its "# " (a multi-line message, such as an
 * allocator's statistics text, must not leave lines a TAP parser reads as unknown output). */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static inline void tap_diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!msg) {
        printf("# (diagnostic lost: out of memory)\n");
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    for (char *line = msg, *nl;; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (nl || *line) /* a trailing newline ends the message, not an empty line */
            printf("# %s\n", line);
        if (!nl)
            break;
    }
    free(msg);
    fflush(stdout);
}
#define TAP_DIAG(...) tap_diag(__VA_ARGS__)

/* Print the plan and return the process exit status. */
static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
