/* trace_wire.h: wire opcodes and header constants of trace format v1 (private to traces/, and
 * to hr_trace_fast.h, the decoder fast path a consumer inlines). */
#ifndef HR_TRACE_WIRE_H
#define HR_TRACE_WIRE_H

#include <stdint.h>

enum {
    HR_W_END = 0x01,
    HR_W_FRAME = 0x02,
    HR_W_ALLOC = 0x10,       /* + domain; no flags follow */
    HR_W_ALLOC_FLAGS = 0x14, /* + domain; flags follow */
    HR_W_FREE = 0x20,
    HR_W_REALLOC = 0x21,
    HR_W_INCREF = 0x30,
    HR_W_DECREF = 0x31,
    HR_W_LINK = 0x32,
    HR_W_UNLINK = 0x33,
    HR_W_DIED = 0x34,
    HR_W_TYPE = 0x40,
    HR_W_FROM_PREV = 0x08, /* or-ed into an id opcode: the id is a zigzag delta from `prev` */
    HR_W_SIZED = 0x80, /* opcodes from here on carry a varint payload length */
    HR_W_ARENA_MAP = 0x80,
    HR_W_ARENA_UNMAP = 0x81,
    HR_W_GC_BEGIN = 0x82,
    HR_W_GC_END = 0x83,
    HR_W_GC_CONTROL = 0x84,
    HR_W_GC_TRACK = 0x85,
    HR_W_GC_SURVIVORS = 0x86,
    HR_W_STATS = 0x88,
    HR_W_PHASE = 0x89
};

#define HR_HEADER_SKIP_MAGIC 0x184D2A5Eu /* zstd skippable frame carrying the header */
#define HR_ZSTD_MAGIC 0xFD2FB528u
#define HR_HEADER_TAG "HRTRACE" /* 8 bytes with its NUL */
#define HR_HEADER_TAG_LEN 8

static inline uint32_t hr_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void hr_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}


/* Zigzag: signed deltas as small unsigned numbers (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...). */
static inline uint64_t hr_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t hr_unzigzag(uint64_t u) { return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); }

/* The id operand of FREE, REALLOC, INCREF, DECREF, DIED and the source of LINK/UNLINK is written
 * either as a delta back from the newest id or as a zigzag delta from `prev`, the id the previous
 * id-naming event named; the writer picks the smaller number. Returns the opcode bit and sets
 * *operand. Both sides start each frame with prev = newest. */
static inline unsigned hr_wire_id_operand(uint64_t id, uint64_t newest, uint64_t prev,
                                          uint64_t *operand)
{
    uint64_t back = newest - id, zz = hr_zigzag((int64_t)(id - prev));
    if (zz < back) {
        *operand = zz;
        return HR_W_FROM_PREV;
    }
    *operand = back;
    return 0;
}

/* Sized opcodes this version understands; other sized opcodes are skipped by readers. */
static inline int hr_wire_sized_known(unsigned op)
{
    return (op >= 0x80 && op <= 0x85) || op == 0x88 || op == 0x89;
}

#endif
