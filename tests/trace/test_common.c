/* test_common.c: varints, CRC-32, spec strings and size parsing, output files (hr_out). */
#include "hr_common.h"
#include "hr_out.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[512];

static const char *at(const char *name) { return tap_path(dir, name); }

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static int holds(const char *path, const char *text)
{
    char got[64] = "";
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(got, 1, sizeof got - 1, f) : 0;
    if (f)
        fclose(f);
    got[n] = '\0';
    return strcmp(got, text) == 0;
}

/* Write text to path through hr_out: open, write, commit. */
static int out_write(const char *path, const char *text, hr_err_t *err)
{
    hr_out_t o;
    int rc = hr_out_open(&o, path, err);
    if (rc)
        return rc;
    if (write(o.fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        hr_out_abort(&o);
        return HR_EIO;
    }
    return hr_out_commit(&o, err);
}

static int no_tmp_files(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q '\\.tmp\\.'", dir);
    return system(cmd) != 0;
}

/* hr_out: symlinks followed (the link stays a link), the old file kept until commit, special
 * files written through, directories refused. */
static void test_out(void)
{
    if (hr_tmp_template(dir, sizeof dir, "hr_test_out") || !mkdtemp(dir)) {
        TAP_OK(0, "cannot make a temporary folder");
        return;
    }
    hr_err_t err = {0};
    put(at("t"), "old");
    chmod(at("t"), 0600);
    symlink("t", at("l"));
    int rc = out_write(at("l"), "new", &err);
    struct stat sb, tb;
    TAP_OK(rc == 0 && lstat(at("l"), &sb) == 0 && S_ISLNK(sb.st_mode) && holds(at("t"), "new") &&
               stat(at("t"), &tb) == 0 && (tb.st_mode & 0777) == 0600 && no_tmp_files(),
           "a symlink stays a symlink; its target gets the new content and keeps its mode: %s",
           err.msg);

    mkdir(at("sub"), 0755);
    symlink("sub/l2", at("l1")); /* a chain ending in a name that does not exist yet */
    symlink("new", at("sub/l2"));
    rc = out_write(at("l1"), "fresh", &err);
    TAP_OK(rc == 0 && holds(at("sub/new"), "fresh") && lstat(at("sub/l2"), &sb) == 0 &&
               S_ISLNK(sb.st_mode) && no_tmp_files(),
           "a chain of relative symlinks is followed to the file it names (created): %s", err.msg);

    hr_out_t o;
    rc = hr_out_open(&o, at("l"), &err);
    if (rc == 0) {
        TAP_OK(write(o.fd, "partial", 7) == 7, "writing to the temporary file");
        hr_out_abort(&o);
    }
    TAP_OK(rc == 0 && holds(at("t"), "new") && no_tmp_files(),
           "a writer that gives up leaves the old content and no temporary file");

    hr_err_clear(&err);
    rc = out_write(at("sub"), "x", &err);
    TAP_OK(rc == HR_EUSAGE && strstr(err.msg, "sub: is a directory"), "a directory is refused: %s",
           err.msg);

    mkfifo(at("fifo"), 0644);
    symlink("fifo", at("lf"));
    rc = hr_out_prepare(&o, at("lf"), &err);
    TAP_OK(rc == 0 && !o.tmp && strcmp(hr_out_write_path(&o), at("fifo")) == 0,
           "a FIFO (behind a symlink) is written through, never renamed over");
    hr_out_abort(&o);

    hr_err_clear(&err);
    rc = hr_out_prepare(&o, at("nope/x"), &err);
    TAP_OK(rc == HR_EIO && strstr(err.msg, "nope/x: cannot create: No such file"),
           "a missing folder is refused before anything is written: %s", err.msg);

    /* Leftovers of killed writers: a commit removes the temporary files of its target whose
     * process is gone, and nothing else (a live process's, another target's, other names). */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    char gone[64], alive[64], other[64];
    snprintf(gone, sizeof gone, "k.tmp.%ld", (long)dead);
    snprintf(alive, sizeof alive, "k.tmp.%ld", (long)getppid());
    snprintf(other, sizeof other, "kk.tmp.%ld", (long)dead);
    put(at(gone), "x");
    put(at(alive), "x");
    put(at(other), "x");
    put(at("k.tmp.12x"), "x");
    hr_err_clear(&err);
    rc = out_write(at("k"), "kept", &err);
    TAP_OK(rc == 0 && holds(at("k"), "kept") && access(at(gone), F_OK) != 0 &&
               access(at(alive), F_OK) == 0 && access(at(other), F_OK) == 0 &&
               access(at("k.tmp.12x"), F_OK) == 0,
           "a commit removes its target's temporary files of processes that are gone, and only "
           "those: %s", err.msg);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        TAP_DIAG("could not remove %s", dir);
}

int main(void)
{
    /* Varints: every boundary round-trips, lengths are minimal, overlong/overflow rejected. */
    uint64_t vals[] = {0, 1, 127, 128, 255, 16383, 16384, (1ull << 32) - 1, 1ull << 32,
                       (1ull << 63) - 1, 1ull << 63, UINT64_MAX};
    int ok = 1;
    for (size_t i = 0; i < HR_ARRAY_LEN(vals); i++) {
        uint8_t buf[HR_VARINT_MAX];
        size_t n = hr_varint_put(buf, vals[i]);
        size_t want = 1;
        for (uint64_t v = vals[i]; v >= 128; v >>= 7)
            want++;
        const uint8_t *p = buf;
        uint64_t back = 0;
        ok &= n == want && hr_varint_get(&p, buf + n, &back) == 1 && back == vals[i] &&
              p == buf + n;
        p = buf; /* every strict prefix is "incomplete" */
        for (size_t k = 0; k < n; k++) {
            p = buf;
            ok &= hr_varint_get(&p, buf + k, &back) == 0;
        }
    }
    TAP_OK(ok, "varints round-trip at every boundary, prefixes are incomplete");
    uint8_t over[11] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0};
    const uint8_t *p = over;
    uint64_t v;
    TAP_OK(hr_varint_get(&p, over + 11, &v) == -1, "a 10-byte varint above 2^64 is rejected");
    uint8_t longer[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    p = longer;
    TAP_OK(hr_varint_get(&p, longer + 11, &v) == -1, "an 11-byte varint is rejected");

    TAP_OK(hr_crc32(0, "123456789", 9) == 0xCBF43926u, "CRC-32 check value");
    TAP_OK(hr_crc32(hr_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u, "CRC-32 is incremental");

    hr_spec_t s;
    hr_err_t err = {0};
    TAP_OK(hr_spec_parse(&s, "pymalloc:preset=3.11,pool=4K", "allocator", &err) == 0 &&
               strcmp(s.name, "pymalloc") == 0 && s.nparams == 2,
           "spec with key=value parameters parses");
    TAP_OK(strcmp(hr_spec_get(&s, "pool"), "4K") == 0 && hr_spec_get(&s, "arena") == NULL,
           "hr_spec_get finds present keys only");
    hr_err_clear(&err);
    TAP_OK(hr_spec_check_unused(&s, "allocator", NULL, &err) == HR_EUSAGE &&
               strstr(err.msg, "'preset'") != NULL,
           "an unused parameter is reported by name: %s", err.msg);
    hr_err_clear(&err);
    TAP_OK(hr_spec_check_unused(&s, "allocator", "pool, arena, presets", &err) == HR_EUSAGE &&
               strcmp(err.msg, "allocator 'pymalloc' has no parameter 'preset' (did you mean "
                               "'presets'?) (parameters: pool, arena, presets)") == 0,
           "with the names that exist: the nearest and the list: %s", err.msg);
    char hint[96], keys[128];
    TAP_OK(strcmp(hr_spec_keys_of("trigger=F (default 2x, 1..1000) min=SIZE (1M) | budget=SIZE "
                                  "t0=,t1=", keys, sizeof keys),
                  "trigger, min, budget, t0, t1") == 0,
           "parameter names of a description: '%s'", keys);
    TAP_OK(strcmp(hr_did_you_mean(hint, sizeof hint, "generatinal", "generational, refcount"),
                  " (did you mean 'generational'?)") == 0 &&
               strcmp(hr_did_you_mean(hint, sizeof hint, "refcuont", "generational refcount"),
                      " (did you mean 'refcount'?)") == 0 &&
               strcmp(hr_did_you_mean(hint, sizeof hint, "xyz", "generational, refcount"), "") == 0 &&
               strcmp(hr_did_you_mean(hint, sizeof hint, "mark", "marksweep"), "") == 0,
           "did-you-mean: a deletion, a swap; nothing for a name far from all");
    TAP_OK(hr_spec_parse(&s, "generational:700,10,10", "collector", &err) == 0 &&
               strcmp(hr_spec_positional(&s, 2), "10") == 0 && !hr_spec_positional(&s, 3),
           "positional values");
    hr_err_clear(&err);
    TAP_OK(hr_spec_parse(&s, "x:a=", "allocator", &err) == HR_EUSAGE, "empty value rejected: %s",
           err.msg);
    hr_err_clear(&err);
    TAP_OK(hr_spec_parse(&s, ":a=1", "allocator", &err) == HR_EUSAGE, "missing name rejected");
    hr_err_clear(&err);
    TAP_OK(hr_spec_parse(&s, "x:a=1,", "allocator", &err) == HR_EUSAGE, "trailing comma rejected");
    hr_err_clear(&err);
    TAP_OK(hr_spec_parse(&s, "pymalloc:preset=3.11,pool=4K,preset=2.4", "allocator", &err) ==
                   HR_EUSAGE &&
               strstr(err.msg, "allocator spec 'pymalloc:preset=3.11,pool=4K,preset=2.4' gives "
                               "'preset' twice") != NULL,
           "a key given twice is rejected, naming the spec and the key: %s", err.msg);
    hr_err_clear(&err);
    TAP_OK(hr_spec_parse(&s, "generational:t0=5,t0=5", "collector", &err) == HR_EUSAGE,
           "a key given twice is rejected even with the same value");

    uint64_t sz;
    TAP_OK(hr_parse_size("256K", &sz) == 0 && sz == 256 * 1024, "256K");
    TAP_OK(hr_parse_size("1MiB", &sz) == 0 && sz == 1 << 20, "1MiB");
    TAP_OK(hr_parse_size("16", &sz) == 0 && sz == 16, "16");
    TAP_OK(hr_parse_size("-1", &sz) != 0 && hr_parse_size("4Q", &sz) != 0 &&
               hr_parse_size("", &sz) != 0 && hr_parse_size("99999999999999999999", &sz) != 0 &&
               hr_parse_size("17179869184G", &sz) != 0,
           "bad sizes rejected (negative, unknown suffix, empty, overflow)");
    double d;
    TAP_OK(hr_parse_double("2x", &d) == 0 && d == 2.0 && hr_parse_double("x", &d) != 0,
           "factors");
    TAP_OK(hr_parse_double("1.5", &d) == 0 && d == 1.5 && hr_parse_double(".25", &d) == 0 &&
               d == 0.25 && hr_parse_double("-2", &d) == 0 && d == -2.0 &&
               hr_parse_double("3.", &d) == 0 && d == 3.0,
           "plain decimals");
    const char *not_plain[] = {"nan", "NaN", "inf", "-inf", "infinity", "0x1p3", "0x10", "1e3",
                               "1E-2", " 1", "1 ", "\t2", "+1", "1.5.2", ".", "-", "2xx", "x2",
                               "--1", ""};
    ok = 1;
    for (size_t i = 0; i < HR_ARRAY_LEN(not_plain); i++)
        if (hr_parse_double(not_plain[i], &d) == 0) {
            ok = 0;
            TAP_DIAG("accepted '%s'", not_plain[i]);
        }
    TAP_OK(ok, "non-finite, hex, exponent and space-padded numbers rejected");
    char big[400];
    memset(big, '9', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    TAP_OK(hr_parse_double(big, &d) != 0, "a decimal beyond the range of a double is rejected");

    hr_err_clear(&err);
    hr_err_set(&err, HR_EFORMAT, "first");
    hr_err_set(&err, HR_EIO, "second");
    hr_err_prefix(&err, "file: ");
    TAP_OK(err.code == HR_EFORMAT && strcmp(err.msg, "file: first") == 0,
           "the first error wins and can be prefixed");
    {   /* a message too long for the buffer says it was cut, never in the middle of a character */
        static char longmsg[HR_ERR_MSG_MAX + 100];
        memset(longmsg, 'a', sizeof longmsg - 1);
        memcpy(longmsg + HR_ERR_MSG_MAX - 5, "\xc3\xa9\xc3\xa9", 4); /* two 2-byte characters */
        hr_err_clear(&err);
        hr_err_set(&err, HR_EFORMAT, "%s", longmsg);
        size_t n = strlen(err.msg);
        TAP_OK(n <= HR_ERR_MSG_MAX - 1 && strcmp(err.msg + n - 3, "...") == 0 &&
                   (unsigned char)err.msg[n - 4] != 0xc3,
               "a message cut to fit ends with '...' after whole characters");
        hr_err_clear(&err);
        hr_err_set(&err, HR_EFORMAT, "%s", longmsg + 119); /* fits, but not with the prefix */
        hr_err_prefix(&err, "%s", "a prefix that pushes the end out: ");
        n = strlen(err.msg);
        TAP_OK(strncmp(err.msg, "a prefix", 8) == 0 && strcmp(err.msg + n - 3, "...") == 0,
               "a prefixed message cut to fit ends with '...'");
        hr_err_clear(&err);
        hr_err_set(&err, HR_EFORMAT, "%s", "short");
        hr_err_prefix(&err, "p: ");
        TAP_OK(strcmp(err.msg, "p: short") == 0, "a message that fits is not marked");
    }
    TAP_OK(hr_exit_status(HR_EUSAGE) == 1 && hr_exit_status(HR_EFORMAT) == 2 &&
               hr_exit_status(HR_ETRUNC) == 2 && hr_exit_status(HR_EIO) == 3,
           "exit statuses: usage 1, bad input 2, other 3");
    char t[32];
    TAP_OK(strcmp(hr_fmt_thousands(t, sizeof t, 1234567), "1,234,567") == 0 &&
               strcmp(hr_fmt_thousands(t, sizeof t, 12), "12") == 0,
           "thousands separators");
    test_out();
    return tap_done();
}
