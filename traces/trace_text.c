/* trace_text.c: the text form of a trace (one event per line): formatting and packing.
 *
 * The grammar is in docs/trace-format.md ("Text form"). Formatting is canonical, so that
 * format(parse(text)) == text for any text `dump` wrote; the parser accepts the same lines plus
 * blank lines and '#' comments. Validation is not repeated here: every parsed event goes through
 * the writer, whose checker reports the problem, and the parser adds the location.
 */
#include "hr_trace.h"
#include "trace_wire.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* {==== Formatting ==== */

int hr_trace_format_string(hr_buf_t *out, const uint8_t *s, size_t len)
{
    int rc = hr_buf_reserve(out, len + 2);
    rc |= hr_buf_putc(out, '"');
    for (size_t i = 0; i < len && !rc; i++) {
        uint8_t c = s[i];
        switch (c) {
        case '\\': rc = hr_buf_append(out, "\\\\", 2); break;
        case '"': rc = hr_buf_append(out, "\\\"", 2); break;
        case '\n': rc = hr_buf_append(out, "\\n", 2); break;
        case '\t': rc = hr_buf_append(out, "\\t", 2); break;
        case '\r': rc = hr_buf_append(out, "\\r", 2); break;
        default:
            if (c < 0x20 || c == 0x7f)
                rc = hr_buf_printf(out, "\\x%02x", c);
            else
                rc = hr_buf_putc(out, c);
        }
    }
    rc |= hr_buf_putc(out, '"');
    return rc ? HR_ENOMEM : HR_OK;
}

int hr_trace_format_header(hr_buf_t *out, const hr_trace_header_t *h)
{
    int rc = hr_buf_printf(out, "heapreplay-trace %d %s\n", h->version, hr_kind_name(h->kind));
    for (int i = 0; i < h->nmeta && !rc; i++) {
        rc |= hr_buf_printf(out, "meta %s ", h->meta[i].key);
        rc |= hr_trace_format_string(out, (const uint8_t *)h->meta[i].value,
                                     strlen(h->meta[i].value));
        rc |= hr_buf_putc(out, '\n');
    }
    return rc ? HR_ENOMEM : HR_OK;
}

int hr_trace_format_event(hr_buf_t *out, const hr_event_t *ev)
{
    unsigned long long a = ev->a, b = ev->b;
    int rc = HR_OK;
    switch (ev->op) {
    case HR_OP_ALLOC:
        rc = hr_buf_printf(out, "alloc %llu %llu %s", a, b, hr_domain_name(ev->domain));
        if (ev->flags & HR_F_OBJECT)
            rc |= hr_buf_printf(out, " object");
        if (ev->flags & HR_F_GC)
            rc |= hr_buf_printf(out, " gc");
        if (ev->flags & HR_F_ZERO)
            rc |= hr_buf_printf(out, " zero");
        if (ev->flags & HR_F_TYPED)
            rc |= hr_buf_printf(out, " type=%u", ev->tag);
        if (ev->flags & HR_F_ALIGNED)
            rc |= hr_buf_printf(out, " align=%llu", 1ull << ev->align_log2);
        break;
    case HR_OP_FREE:
    case HR_OP_INCREF:
    case HR_OP_DECREF:
    case HR_OP_DIED:
        rc = hr_buf_printf(out, "%s %llu", hr_op_name(ev->op), a);
        break;
    case HR_OP_REALLOC:
    case HR_OP_LINK:
    case HR_OP_UNLINK:
        rc = hr_buf_printf(out, "%s %llu %llu", hr_op_name(ev->op), a, b);
        break;
    case HR_OP_TYPE:
        rc = hr_buf_printf(out, "type %u ", ev->tag);
        rc |= hr_trace_format_string(out, ev->str, (size_t)a);
        break;
    case HR_OP_ARENA_MAP:
    case HR_OP_ARENA_UNMAP:
        rc = hr_buf_printf(out, "%s 0x%llx %llu", hr_op_name(ev->op), a, b);
        break;
    case HR_OP_GC_BEGIN:
        rc = hr_buf_printf(out, "gc begin %u", ev->tag);
        break;
    case HR_OP_GC_END:
        rc = hr_buf_printf(out, "gc end %u %llu %llu", ev->tag, a, b);
        break;
    case HR_OP_GC_CONTROL:
        switch (ev->tag) {
        case HR_GC_COLLECT: rc = hr_buf_printf(out, "gc collect %llu", a); break;
        case HR_GC_DISABLE: rc = hr_buf_printf(out, "gc disable"); break;
        case HR_GC_ENABLE: rc = hr_buf_printf(out, "gc enable"); break;
        case HR_GC_DEL: rc = hr_buf_printf(out, "gc del"); break;
        case HR_GC_FREEZE: rc = hr_buf_printf(out, "gc freeze"); break;
        case HR_GC_UNFREEZE: rc = hr_buf_printf(out, "gc unfreeze"); break;
        default:
            rc = hr_buf_printf(out, "gc threshold %llu %llu %llu", a, b & 0xffffffffu, b >> 32);
        }
        break;
    case HR_OP_GC_SURVIVORS:
        rc = hr_buf_printf(out, "gc survivors %llu %llu", a, b);
        break;
    case HR_OP_GC_TRACK:
        rc = ev->tag == HR_TRACK ? hr_buf_printf(out, "gc track %llu %llu", a, b)
                                 : hr_buf_printf(out, "gc untrack %llu%s", a,
                                                 ev->tag == HR_UNTRACK_SURVIVOR ? " survivor" : "");
        break;
    case HR_OP_STATS: {
        const char *k = hr_stats_kind_name((int)ev->tag);
        rc = k ? hr_buf_printf(out, "stats %s ", k) : hr_buf_printf(out, "stats %u ", ev->tag);
        rc |= hr_trace_format_string(out, ev->str, (size_t)a);
        break;
    }
    case HR_OP_PHASE:
        rc = hr_buf_printf(out, "phase ");
        rc |= hr_trace_format_string(out, ev->str, (size_t)a);
        break;
    case HR_OP_UNKNOWN:
        rc = hr_buf_printf(out, "unknown 0x%02x ", ev->tag);
        rc |= hr_trace_format_string(out, ev->str, (size_t)a);
        break;
    default:
        rc = hr_buf_printf(out, "? op %u", ev->op);
    }
    rc |= hr_buf_putc(out, '\n');
    return rc ? HR_ENOMEM : HR_OK;
}

/* {==== Parsing ==== */

typedef struct lexer {
    const char *p, *end; /* the current line, without its newline */
    hr_buf_t *strbuf;    /* decoded string storage (owned by the caller) */
    const char *why;     /* what went wrong, for the message */
} lexer_t;

static void skip_space(lexer_t *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
        lx->p++;
}

/* A bare word into buf (NUL-terminated). */
static int word(lexer_t *lx, char *buf, size_t cap)
{
    skip_space(lx);
    size_t n = 0;
    while (lx->p < lx->end && *lx->p != ' ' && *lx->p != '\t') {
        if (n + 1 >= cap) {
            lx->why = "word too long";
            return 0;
        }
        buf[n++] = *lx->p++;
    }
    buf[n] = '\0';
    if (!n)
        lx->why = "missing operand";
    return n > 0;
}

static int number(lexer_t *lx, uint64_t *v)
{
    char w[64];
    if (!word(lx, w, sizeof w))
        return 0;
    char *e;
    errno = 0;
    int hex = w[0] == '0' && (w[1] == 'x' || w[1] == 'X');
    if (!isdigit((unsigned char)w[0]) || (hex && !isxdigit((unsigned char)w[2]))) {
        lx->why = "expected a number";
        return 0;
    }
    unsigned long long x = strtoull(w, &e, hex ? 16 : 10);
    if (errno || *e) {
        lx->why = errno ? "number out of range" : "expected a number";
        return 0;
    }
    *v = x;
    return 1;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A quoted string, decoded into lx->strbuf (reset first). */
static int string(lexer_t *lx)
{
    skip_space(lx);
    lx->strbuf->len = 0;
    if (lx->p >= lx->end || *lx->p != '"') {
        lx->why = "expected a quoted string";
        return 0;
    }
    lx->p++;
    while (lx->p < lx->end && *lx->p != '"') {
        int c = (unsigned char)*lx->p++;
        if (c == '\\') {
            if (lx->p >= lx->end)
                break;
            c = *lx->p++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '\\': case '"': break;
            case 'x': {
                int h = lx->p + 1 < lx->end ? hexval(lx->p[0]) : -1;
                int l = h >= 0 ? hexval(lx->p[1]) : -1;
                if (l < 0) {
                    lx->why = "bad \\x escape";
                    return 0;
                }
                c = h * 16 + l;
                lx->p += 2;
                break;
            }
            default:
                lx->why = "unknown escape in string";
                return 0;
            }
        }
        if (hr_buf_putc(lx->strbuf, c)) {
            lx->why = "out of memory";
            return 0;
        }
    }
    if (lx->p >= lx->end) {
        lx->why = "unterminated string";
        return 0;
    }
    lx->p++;
    if (hr_buf_reserve(lx->strbuf, 0)) {
        lx->why = "out of memory";
        return 0;
    }
    lx->strbuf->data[lx->strbuf->len] = '\0'; /* also for an empty string after a longer one */
    return 1;
}

static int at_end(lexer_t *lx)
{
    skip_space(lx);
    if (lx->p != lx->end) {
        lx->why = "unexpected text at the end of the line";
        return 0;
    }
    return 1;
}

static int domain_of(const char *w)
{
    for (int d = 0; d < HR_DOMAIN_COUNT; d++)
        if (strcmp(w, hr_domain_name(d)) == 0)
            return d;
    return -1;
}

/* Parse one event line (not the header, not meta). */
static int parse_event(lexer_t *lx, hr_event_t *ev)
{
    char w[64];
    uint64_t x, y;
    memset(ev, 0, sizeof *ev);
    if (!word(lx, w, sizeof w))
        return 0;
    if (strcmp(w, "alloc") == 0) {
        ev->op = HR_OP_ALLOC;
        if (!number(lx, &ev->a) || !number(lx, &ev->b) || !word(lx, w, sizeof w))
            return 0;
        int d = domain_of(w);
        if (d < 0) {
            lx->why = "unknown domain (raw, mem, obj or native)";
            return 0;
        }
        ev->domain = (uint8_t)d;
        int last = 0; /* canonical order: object gc zero type= align= */
        for (skip_space(lx); lx->p < lx->end; skip_space(lx)) {
            if (!word(lx, w, sizeof w))
                return 0;
            int rank;
            if (strcmp(w, "object") == 0)
                ev->flags |= HR_F_OBJECT, rank = 1;
            else if (strcmp(w, "gc") == 0)
                ev->flags |= HR_F_GC, rank = 2;
            else if (strcmp(w, "zero") == 0)
                ev->flags |= HR_F_ZERO, rank = 3;
            else if (strncmp(w, "type=", 5) == 0) {
                char *e;
                errno = 0;
                unsigned long long t = strtoull(w + 5, &e, 10);
                if (!isdigit((unsigned char)w[5]) || *e || errno || t > UINT32_MAX) {
                    lx->why = "bad type=N";
                    return 0;
                }
                ev->flags |= HR_F_TYPED, ev->tag = (uint32_t)t, rank = 4;
            } else if (strncmp(w, "align=", 6) == 0) {
                char *e;
                errno = 0;
                unsigned long long al = strtoull(w + 6, &e, 10);
                if (!isdigit((unsigned char)w[6]) || *e || errno || al == 0 || (al & (al - 1))) {
                    lx->why = "align=N needs a power of two";
                    return 0;
                }
                int lg = 0;
                while ((1ull << lg) < al)
                    lg++;
                ev->flags |= HR_F_ALIGNED, ev->align_log2 = (uint8_t)lg, rank = 5;
            } else {
                lx->why = "unknown alloc flag (object, gc, zero, type=N, align=N)";
                return 0;
            }
            if (rank <= last) {
                lx->why = "alloc flags repeated or out of order (object gc zero type= align=)";
                return 0;
            }
            last = rank;
        }
        return 1;
    }
    static const struct { const char *name; int op; int nargs; } simple[] = {
        {"free", HR_OP_FREE, 1},     {"incref", HR_OP_INCREF, 1}, {"decref", HR_OP_DECREF, 1},
        {"died", HR_OP_DIED, 1},     {"realloc", HR_OP_REALLOC, 2}, {"link", HR_OP_LINK, 2},
        {"unlink", HR_OP_UNLINK, 2},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(simple); i++)
        if (strcmp(w, simple[i].name) == 0) {
            ev->op = (uint8_t)simple[i].op;
            if (!number(lx, &ev->a) || (simple[i].nargs == 2 && !number(lx, &ev->b)))
                return 0;
            return at_end(lx);
        }
    if (strcmp(w, "type") == 0) {
        ev->op = HR_OP_TYPE;
        if (!number(lx, &x) || !string(lx) || !at_end(lx))
            return 0;
        if (x > UINT32_MAX) {
            lx->why = "type id out of range";
            return 0;
        }
        ev->tag = (uint32_t)x;
        ev->a = lx->strbuf->len;
        ev->str = lx->strbuf->data;
        return 1;
    }
    if (strcmp(w, "arena") == 0) {
        if (!word(lx, w, sizeof w))
            return 0;
        if (strcmp(w, "map") && strcmp(w, "unmap")) {
            lx->why = "expected 'arena map' or 'arena unmap'";
            return 0;
        }
        ev->op = w[0] == 'm' ? HR_OP_ARENA_MAP : HR_OP_ARENA_UNMAP;
        return number(lx, &ev->a) && number(lx, &ev->b) && at_end(lx);
    }
    if (strcmp(w, "gc") == 0) {
        if (!word(lx, w, sizeof w))
            return 0;
        int begin = strcmp(w, "begin") == 0;
        static const struct { const char *w; unsigned action; } bare[] = {
            {"disable", HR_GC_DISABLE}, {"enable", HR_GC_ENABLE}, {"del", HR_GC_DEL},
            {"freeze", HR_GC_FREEZE},   {"unfreeze", HR_GC_UNFREEZE}};
        for (size_t i = 0; i < HR_ARRAY_LEN(bare); i++)
            if (!strcmp(w, bare[i].w)) {
                ev->op = HR_OP_GC_CONTROL;
                ev->tag = bare[i].action;
                return at_end(lx);
            }
        if (!strcmp(w, "collect") || !strcmp(w, "threshold")) {
            ev->op = HR_OP_GC_CONTROL;
            ev->tag = w[0] == 'c' ? HR_GC_COLLECT : HR_GC_THRESHOLD;
            if (!number(lx, &ev->a))
                return 0;
            if (ev->tag == HR_GC_THRESHOLD) {
                uint64_t t1, t2;
                if (!number(lx, &t1) || !number(lx, &t2))
                    return 0;
                if (ev->a > UINT32_MAX || t1 > UINT32_MAX || t2 > UINT32_MAX) {
                    lx->why = "threshold out of range";
                    return 0;
                }
                ev->b = t1 | t2 << 32;
            }
            return at_end(lx);
        }
        if (!strcmp(w, "survivors")) {
            ev->op = HR_OP_GC_SURVIVORS;
            return number(lx, &ev->a) && number(lx, &ev->b) && at_end(lx);
        }
        if (!strcmp(w, "track") || !strcmp(w, "untrack")) {
            ev->op = HR_OP_GC_TRACK;
            ev->tag = w[0] == 't' ? HR_TRACK : HR_UNTRACK;
            if (!number(lx, &ev->a))
                return 0;
            if (ev->tag == HR_TRACK)
                return number(lx, &ev->b) && at_end(lx);
            skip_space(lx);
            if (lx->p < lx->end) {
                if (!word(lx, w, sizeof w))
                    return 0;
                if (strcmp(w, "survivor")) {
                    lx->why = "expected 'gc untrack ID' or 'gc untrack ID survivor'";
                    return 0;
                }
                ev->tag = HR_UNTRACK_SURVIVOR;
            }
            return at_end(lx);
        }
        if (!begin && strcmp(w, "end")) {
            lx->why = "expected 'gc begin', 'gc end', 'gc collect', 'gc disable', 'gc enable', "
                      "'gc del', 'gc freeze', 'gc unfreeze', 'gc threshold', 'gc survivors', "
                      "'gc track' or 'gc untrack'";
            return 0;
        }
        if (!number(lx, &x))
            return 0;
        if (x > 255) {
            lx->why = "generation out of range";
            return 0;
        }
        ev->op = begin ? HR_OP_GC_BEGIN : HR_OP_GC_END;
        ev->tag = (uint32_t)x;
        if (!begin && (!number(lx, &ev->a) || !number(lx, &ev->b)))
            return 0;
        return at_end(lx);
    }
    if (strcmp(w, "stats") == 0) {
        if (!word(lx, w, sizeof w))
            return 0;
        ev->op = HR_OP_STATS;
        ev->tag = UINT32_MAX;
        for (int k = 0; hr_stats_kind_name(k); k++)
            if (strcmp(w, hr_stats_kind_name(k)) == 0)
                ev->tag = (uint32_t)k;
        if (ev->tag == UINT32_MAX) {
            char *e;
            errno = 0;
            unsigned long long k = strtoull(w, &e, 10);
            if (!isdigit((unsigned char)w[0]) || *e || errno || k >= UINT32_MAX || k < 3) {
                lx->why = "unknown stats kind (pymalloc, gc, text, or a number from 3)";
                return 0;
            }
            ev->tag = (uint32_t)k;
        }
        if (!string(lx) || !at_end(lx))
            return 0;
        ev->a = lx->strbuf->len;
        ev->str = lx->strbuf->data;
        return 1;
    }
    if (strcmp(w, "phase") == 0 || strcmp(w, "unknown") == 0) {
        ev->op = w[0] == 'p' ? HR_OP_PHASE : HR_OP_UNKNOWN;
        if (ev->op == HR_OP_UNKNOWN) {
            if (!number(lx, &y))
                return 0;
            if (y < HR_W_SIZED || y > 0xff || hr_wire_sized_known((unsigned)y)) {
                lx->why = "unknown records need an unassigned sized opcode (0x80..0xff)";
                return 0;
            }
            ev->tag = (uint32_t)y;
        }
        if (!string(lx) || !at_end(lx))
            return 0;
        ev->a = lx->strbuf->len;
        ev->str = lx->strbuf->data;
        return 1;
    }
    lx->why = "unknown event";
    return 0;
}

/* {==== Packing ====
 * One line at a time (pack_line), so a file is packed as it is read: memory stays bounded by the
 * longest line, whatever the input's size (a device or a pipe that never ends included). */

/* The longest line accepted from a file. A text line holds one event; the longest are stats and
 * phase strings (CPython's statistics text is a few KiB, up to 4 bytes per byte escaped). */
#define PACK_LINE_MAX ((size_t)16 << 20)

typedef struct packer {
    const char *text_path, *out_path;
    const hr_trace_write_opts_t *opts;
    hr_buf_t strbuf;
    hr_trace_header_t hdr;
    hr_trace_writer_t *w;
    uint64_t line, event;
    int have_header;
} packer_t;

static void packer_init(packer_t *pk, const char *text_path, const char *out_path,
                        const hr_trace_write_opts_t *opts)
{
    memset(pk, 0, sizeof *pk);
    pk->text_path = text_path, pk->out_path = out_path, pk->opts = opts;
    hr_buf_init(&pk->strbuf);
    hr_trace_header_init(&pk->hdr, HR_KIND_ALLOC);
}

/* Pack the line [s, eol) (without its newline) that starts at byte line_off. */
static int pack_line(packer_t *pk, const char *s, const char *eol, size_t line_off, hr_err_t *err)
{
    const char *text_path = pk->text_path;
    unsigned long long line = ++pk->line;
    lexer_t lx = {.strbuf = &pk->strbuf, .p = s, .end = eol};
    if (lx.end > lx.p && lx.end[-1] == '\r')
        return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): carriage return at the end of "
                          "the line (convert the file to Unix line endings)", text_path, line,
                          line_off);
    skip_space(&lx);
    if (lx.p == lx.end || *lx.p == '#')
        return HR_OK;
    if (memchr(lx.p, '\0', (size_t)(lx.end - lx.p)))
        return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): NUL byte in a text trace",
                          text_path, line, line_off);
    char kw[64];
    if (!pk->have_header) {
        uint64_t version;
        if (!word(&lx, kw, sizeof kw) || strcmp(kw, "heapreplay-trace") != 0)
            return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): not a heapreplay text trace "
                              "(the first line must be 'heapreplay-trace 1 alloc|graph')",
                              text_path, line, line_off);
        if (!number(&lx, &version) || !word(&lx, kw, sizeof kw) || !at_end(&lx))
            return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): bad header line: %s",
                              text_path, line, line_off, lx.why);
        if (version != HR_TRACE_VERSION)
            return hr_err_set(err, HR_EVERSION, "%s:%llu (byte %zu): text trace version %llu, "
                              "this heapreplay reads version %d", text_path, line, line_off,
                              (unsigned long long)version, HR_TRACE_VERSION);
        if (strcmp(kw, "alloc") && strcmp(kw, "graph"))
            return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): unknown trace kind '%s' "
                              "(alloc or graph)", text_path, line, line_off, kw);
        pk->hdr.kind = kw[0] == 'g' ? HR_KIND_GRAPH : HR_KIND_ALLOC;
        pk->have_header = 1;
        return HR_OK;
    }
    const char *save = lx.p;
    if (word(&lx, kw, sizeof kw) && strcmp(kw, "meta") == 0) {
        char key[256];
        if (pk->w)
            return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): meta lines must come before "
                              "the first event", text_path, line, line_off);
        if (!word(&lx, key, sizeof key) || !string(&lx) || !at_end(&lx))
            return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): bad meta line: %s",
                              text_path, line, line_off, lx.why);
        if (memchr(pk->strbuf.data, 0, pk->strbuf.len) || strchr(key, '"'))
            return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): metadata may not contain NUL "
                              "bytes, nor quotes in keys", text_path, line, line_off);
        if (hr_trace_header_get(&pk->hdr, key))
            return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): metadata key '%s' given "
                              "twice", text_path, line, line_off, key);
        if (hr_trace_header_set(&pk->hdr, key, (const char *)pk->strbuf.data))
            return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): bad metadata key '%s' or too "
                              "many entries (at most %d)", text_path, line, line_off, key,
                              HR_TRACE_META_MAX);
        return HR_OK;
    }
    lx.p = save;
    int rc;
    if (!pk->w && (rc = hr_trace_writer_open(&pk->w, pk->out_path, &pk->hdr, pk->opts, err)))
        return rc;
    hr_event_t ev;
    if (!parse_event(&lx, &ev))
        return hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu), event %llu: %s", text_path, line,
                          line_off, (unsigned long long)pk->event, lx.why);
    hr_err_t werr;
    hr_err_clear(&werr);
    if ((rc = hr_trace_write(pk->w, &ev, &werr)))
        return hr_err_set(err, rc, "%s:%llu (byte %zu), event %llu: %s", text_path, line,
                          line_off, (unsigned long long)pk->event, werr.msg);
    pk->event++;
    return HR_OK;
}

/* After the last line (rc: how the lines went): close the trace, or give it up. */
static int packer_finish(packer_t *pk, int rc, hr_err_t *err)
{
    if (!rc && !pk->have_header)
        rc = hr_err_set(err, HR_EFORMAT, "%s: empty text trace (no 'heapreplay-trace' line)",
                        pk->text_path);
    if (!rc && !pk->w)
        rc = hr_trace_writer_open(&pk->w, pk->out_path, &pk->hdr, pk->opts, err);
    if (!rc) {
        rc = hr_trace_writer_close(pk->w, err);
        pk->w = NULL;
    }
    hr_trace_writer_abort(pk->w); /* a failure: the temporary file goes, the old file stays */
    hr_trace_header_free(&pk->hdr);
    hr_buf_free(&pk->strbuf);
    return rc;
}

int hr_trace_pack_text(const char *text_path, const char *out_path,
                       const hr_trace_write_opts_t *opts, hr_err_t *err)
{
    int fd = open(text_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hr_err_set(err, HR_EIO, "%s: cannot open: %s", text_path, strerror(errno));
    packer_t pk;
    packer_init(&pk, text_path, out_path, opts);
    hr_buf_t buf; /* [0, len): read, not yet packed; starts at a line's beginning */
    hr_buf_init(&buf);
    size_t off = 0; /* file offset of buf.data[0] */
    int rc = HR_OK, eof = 0;
    while (!rc && !eof) {
        if (hr_buf_reserve(&buf, 65536)) {
            rc = hr_err_set(err, HR_ENOMEM, "%s: out of memory", text_path);
            break;
        }
        /* read(2), not fread: from a pipe, lines are packed as they arrive */
        ssize_t got = read(fd, buf.data + buf.len, 65536);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = hr_err_set(err, HR_EIO, "%s: read error: %s", text_path, strerror(errno));
            break;
        }
        size_t n = (size_t)got;
        size_t scan = buf.len; /* the part already searched holds no newline */
        buf.len += n;
        eof = n == 0;
        const char *s = (const char *)buf.data, *end = s + buf.len, *eol;
        while (!rc && (eol = memchr(s + scan, '\n', (size_t)(end - s - scan))) != NULL) {
            rc = pack_line(&pk, s, eol, off, err);
            off += (size_t)(eol + 1 - s);
            s = eol + 1;
            scan = 0;
        }
        if (!rc && eof && s < end) /* the last line, without its newline */
            rc = pack_line(&pk, s, end, off, err);
        else if (!rc && (size_t)(end - s) > PACK_LINE_MAX)
            rc = hr_err_set(err, HR_EFORMAT, "%s:%llu (byte %zu): line longer than %zu MiB: not "
                            "a text trace", text_path, (unsigned long long)pk.line + 1, off,
                            PACK_LINE_MAX >> 20);
        buf.len = (size_t)(end - s);
        memmove(buf.data, s, buf.len);
    }
    close(fd);
    hr_buf_free(&buf);
    return packer_finish(&pk, rc, err);
}

int hr_trace_pack_buf(const char *text_path, const char *data, size_t len, const char *out_path,
                      const hr_trace_write_opts_t *opts, hr_err_t *err)
{
    packer_t pk;
    packer_init(&pk, text_path, out_path, opts);
    const char *s = data, *end = s + len;
    int rc = HR_OK;
    while (!rc && s < end) {
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        const char *next = eol ? eol + 1 : end;
        rc = pack_line(&pk, s, eol ? eol : end, (size_t)(s - data), err);
        s = next;
    }
    return packer_finish(&pk, rc, err);
}
