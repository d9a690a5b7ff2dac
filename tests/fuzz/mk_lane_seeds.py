#!/usr/bin/env python3
# mk_lane_seeds.py DIR: writes the crafted seeds of tests/fuzz/corpus/lane (fuzz_lane.c).
# Crafted seeds for fuzz_lane: the payload form (byte 0: kind, then a frame's payload).
import os, random, sys
out = sys.argv[1]
def v(x):
    b = bytearray()
    while True:
        c = x & 0x7f; x >>= 7
        if x: b.append(c | 0x80)
        else: b.append(c); return bytes(b)
def zz(d): return (d << 1) ^ (d >> 63) if d >= 0 else ((-d) << 1) - 1
FRAME = b'\x02' + v(0) + v(0) + v(0) + v(0)
def END(ev, ids, types=0): return b'\x01' + v(ev) + v(ids) + v(types)
seeds = {}
A = lambda size, dom=2: bytes([0x10 + dom]) + v(size)
AF = lambda size, flags, dom=2, extra=b'': bytes([0x14 + dom]) + v(size) + v(flags) + extra
F = lambda back: b'\x20' + v(back)
R = lambda back, size: b'\x21' + v(back) + v(size)
G = lambda op, back: bytes([op]) + v(back)
L = lambda op, back, d: bytes([op]) + v(back) + v(zz(d))
# The replay reads its first 64 events (and a graph trace's events after any record the lane
# does not take) in a batch for the general path: each crafted case comes after 70 plain events,
# so that the lane meets it. Ids then start at 35.
PAD = (A(16) + F(0)) * 35
P = 70
def fp(op, ident, prev):  # an id operand in the zigzag-from-prev form
    return bytes([op | 0x08]) + v(zz(ident - prev))
for kind in (0, 1):
    k = bytes([kind])
    FRAME_ = FRAME
    FRAME = FRAME_ + PAD
    END_ = END
    END = lambda ev, ids, types=0: END_(ev + P, ids + 35, types)
    seeds[f'k{kind}-free-twice'] = k + FRAME + A(16) + F(0) + F(0) + END(3, 1)
    seeds[f'k{kind}-realloc-freed'] = k + FRAME + A(16) + A(32) + F(1) + R(1, 64) + END(4, 2)
    seeds[f'k{kind}-never-allocated'] = k + FRAME + A(16) + b'\x28' + v(zz(3)) + END(2, 1)
    seeds[f'k{kind}-bad-flags'] = k + FRAME + A(16) + AF(16, 0x40) + END(2, 2)
    seeds[f'k{kind}-untyped'] = k + FRAME + AF(16, 0x08, extra=v(0)) + END(1, 1)
    seeds[f'k{kind}-cut-varint'] = k + FRAME + A(16) + b'\x21\x00\x80'
    seeds[f'k{kind}-huge'] = k + FRAME + A(1 << 41) + F(0) + END(2, 1)
    seeds[f'k{kind}-realloc-huge'] = k + FRAME + A(16) + R(0, 1 << 41) + END(2, 1)
    seeds[f'k{kind}-gc-block'] = k + FRAME + AF(48, 0x01) + AF(48, 0x05) + F(1) + F(0) + END(4, 2)
    seeds[f'k{kind}-object'] = (k + FRAME + AF(32, 0x03) + G(0x30, 0) + G(0x31, 0) +
                                L(0x32, 0, 0) + L(0x33, 0, 0) + G(0x31, 0) + G(0x34, 0) + END(7, 1))
    seeds[f'k{kind}-object-freed-as-block'] = k + FRAME + AF(32, 0x03) + F(0) + END(2, 1)
    seeds[f'k{kind}-incref-block'] = k + FRAME + A(32) + G(0x30, 0) + END(2, 1)
    seeds[f'k{kind}-link-to-block'] = k + FRAME + A(32) + AF(32, 0x03) + L(0x32, 0, -1) + END(3, 2)
    seeds[f'k{kind}-decref-below-zero'] = k + FRAME + AF(32, 0x03) + G(0x31, 0) + G(0x31, 0) + END(3, 1)
    seeds[f'k{kind}-died-live'] = k + FRAME + AF(32, 0x03) + G(0x34, 0) + END(2, 1)
    seeds[f'k{kind}-from-prev'] = (k + FRAME + AF(32, 0x03) + AF(32, 0x03) + L(0x32, 0, -1) +
                                   fp(0x30, 35, 35) + fp(0x31, 36, 35) + fp(0x39, 35, 36) +
                                   fp(0x32, 35, 35) + v(zz(0)) + END(7, 2))
    seeds[f'k{kind}-from-prev-free'] = (k + FRAME + A(16) + A(16) + A(16) + F(2) + fp(0x20, 36, 35) +
                                        fp(0x21, 37, 36) + v(64) + fp(0x20, 36, 37) + END(7, 3))
    FRAME, END = FRAME_, END_
    # A longer stream: allocations, frees near the newest, reallocs; objects with links in graph.
    rnd = random.Random(kind)
    for s in range(4):
        body, live, objs, nid, ev, prev = b'', [], [], 0, 0, 0
        for _ in range(300):
            c = rnd.random()
            if c < 0.4 or not live:
                if kind and rnd.random() < 0.4:
                    body += AF(rnd.choice((32, 48, 64)), 0x03); objs.append(nid)
                else:
                    body += A(rnd.choice((8, 16, 24, 500, 5000)), rnd.randrange(3)); live.append(nid)
                prev = nid
                nid += 1
            elif c < 0.75:
                i = live.pop(rnd.randrange(len(live)))
                body += fp(0x20, i, prev) if rnd.random() < 0.5 else F(nid - 1 - i)
                prev = i
            elif c < 0.85:
                i = rnd.choice(live)
                body += (fp(0x21, i, prev) + v(rnd.choice((8, 100, 3000))) if rnd.random() < 0.5
                         else R(nid - 1 - i, rnd.choice((8, 100, 3000))))
                prev = i
            elif kind and objs and c < 0.95:
                a, b = rnd.choice(objs), rnd.choice(objs)
                body += ((fp(0x32, a, prev) + v(zz(b - a))) if rnd.random() < 0.5
                         else L(0x32, nid - 1 - a, b - a))
                prev = b
            elif kind and objs:
                o = objs.pop(rnd.randrange(len(objs)))
                body += fp(0x31, o, prev) if rnd.random() < 0.5 else G(0x31, nid - 1 - o)
                prev = o
            else:
                continue
            ev += 1
        if s == 3:  # a mistake in the middle: free something twice
            body += F(0) + F(0)
        seeds[f'k{kind}-stream{s}'] = k + FRAME + body + END(ev, nid)
for name, data in seeds.items():
    open(os.path.join(out, name), 'wb').write(data)
print(len(seeds), 'seeds')
