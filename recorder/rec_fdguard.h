/* rec_fdguard.h: the preloaded recorders' close, close_range, closefrom, dup2 and dup3.
 *
 * A program may close every descriptor it did not open itself (os.closerange(3, N), a daemon's
 * loop over close) or dup2 over them. The trace's descriptor was among them: the recorder's
 * next frame failed with EBADF (the trace lost), or, worse, went into whatever file the program
 * opened next under that number (the program's file corrupted with zstd frames). These wrappers
 * move the trace's descriptor out of the way first (hr_sink_keep_fd), so the program's call
 * closes or replaces the number it named, as it would without the recorder. When there is nowhere
 * to move it (no free descriptor outside the range), the trace's stays open: a close of it alone
 * returns 0, a range is closed around it, and a dup2 onto it switches the recording off with an
 * error before the program's descriptor takes the number.
 *
 * The including file defines HR_FDGUARD_SINK (an expression: the sink to guard, or NULL when
 * this process does not record) and HR_FDGUARD_FAIL(msg) (switch off with an error). */
#ifndef HR_REC_FDGUARD_H
#define HR_REC_FDGUARD_H

#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HR_FDGUARD_REAL(name)                                                                    \
    static __typeof__(&name) real;                                                                \
    if (!real)                                                                                    \
        *(void **)&real = dlsym(RTLD_NEXT, #name)

__attribute__((visibility("default"))) int close(int fd)
{
    hr_sink_t *s = HR_FDGUARD_SINK;
    if (s && fd >= 0 && hr_sink_keep_fd(s, (unsigned)fd, (unsigned)fd) >= 0)
        return 0; /* stays open for the trace (no free descriptor to move it to) */
    HR_FDGUARD_REAL(close);
    return real ? real(fd) : (int)syscall(SYS_close, fd);
}

__attribute__((visibility("default"))) int close_range(unsigned first, unsigned last, int flags)
{
    HR_FDGUARD_REAL(close_range);
#define HR_CR(a, b) (real ? real(a, b, flags) : (int)syscall(SYS_close_range, a, b, flags))
    hr_sink_t *s = HR_FDGUARD_SINK;
    int keep;
    if (!s || (flags & 4 /* CLOSE_RANGE_CLOEXEC: nothing is closed */) || first > last ||
        (keep = hr_sink_keep_fd(s, first, last)) < 0)
        return HR_CR(first, last);
    int rc = 0;
    if ((unsigned)keep > first)
        rc = HR_CR(first, (unsigned)keep - 1);
    if (rc == 0 && (unsigned)keep < last)
        rc = HR_CR((unsigned)keep + 1, last);
    return rc;
#undef HR_CR
}

__attribute__((visibility("default"))) void closefrom(int lowfd)
{
    HR_FDGUARD_REAL(closefrom);
    hr_sink_t *s = HR_FDGUARD_SINK;
    int keep = s && lowfd >= 0 ? hr_sink_keep_fd(s, (unsigned)lowfd, ~0u) : -1;
    if (keep < 0) {
        if (real)
            real(lowfd);
        else
            syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0);
        return;
    }
    if (keep > lowfd)
        syscall(SYS_close_range, (unsigned)lowfd, (unsigned)keep - 1, 0);
    syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0);
}

static int hr_fdguard_dup_target(int oldfd, int newfd)
{
    hr_sink_t *s = HR_FDGUARD_SINK;
    if (s && newfd >= 0 && oldfd != newfd && hr_sink_keep_fd(s, (unsigned)newfd, (unsigned)newfd) >= 0)
        HR_FDGUARD_FAIL("the program replaced the trace's file descriptor and no other was free "
                        "to move it to: the trace ends here");
    return 0;
}

__attribute__((visibility("default"))) int dup2(int oldfd, int newfd)
{
    HR_FDGUARD_REAL(dup2);
    hr_fdguard_dup_target(oldfd, newfd);
    return real ? real(oldfd, newfd) : (int)syscall(SYS_dup2, oldfd, newfd);
}

__attribute__((visibility("default"))) int dup3(int oldfd, int newfd, int flags)
{
    HR_FDGUARD_REAL(dup3);
    hr_fdguard_dup_target(oldfd, newfd);
    return real ? real(oldfd, newfd, flags) : (int)syscall(SYS_dup3, oldfd, newfd, flags);
}

#undef HR_FDGUARD_REAL
#endif
