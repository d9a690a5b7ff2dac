#!/usr/bin/env python3
"""check_trace.py CHECK DUMP [ARGS]: properties of a recorded trace (text form from 'dump').

Prints one line per finding; exits 0 when the property holds, 1 when it does not."""
import json, re, shlex, sys

def events(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith(("heapreplay-trace", "meta ")):
                continue
            yield line

def unquote(s):
    return s[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape") \
        if s.startswith('"') else s

def parse(line):
    head, _, rest = line.partition(" ")
    if head in ("stats", "phase", "type"):
        if head == "phase":
            return head, [unquote(rest)]
        kind, _, text = rest.partition(" ")
        return head, [kind, unquote(text)]
    return head, rest.split()

def stats_of(path):
    out = {}
    for line in events(path):
        h, a = parse(line)
        if h == "stats":
            out.setdefault(a[0], a[1])
    return out

def fail(msg):
    print(msg)
    sys.exit(1)

def check_stats(path):
    """pymalloc text present; GC_BEGIN/END before the gc stats match its collections; arena facts
    match the text's arena counters; the recorder's self-check is clean."""
    st = stats_of(path)
    pm, gcj, sc = st.get("pymalloc", ""), st.get("gc"), st.get("text", "")
    if not pm.startswith("Small block threshold"):
        fail("no pymalloc stats text starting with 'Small block threshold'")
    begins = ends = maps = unmaps = 0
    for line in events(path):
        h, a = parse(line)
        if h == "stats" and a[0] == "gc":
            break
        if h == "gc":
            begins += a[0] == "begin"
            ends += a[0] == "end"
        if h == "arena":
            maps += a[0] == "map"
            unmaps += a[0] == "unmap"
    colls = sum(g["collections"] for g in json.loads(gcj))
    if not (begins == ends == colls):
        fail(f"gc begin {begins}, gc end {ends}, gc.get_stats() collections {colls}")
    def num(key):
        m = re.search(r"# arenas " + key + r"\s*=\s*([\d,]+)", pm)
        return int(m.group(1).replace(",", ""))
    if num("allocated total") != maps or num("allocated current") != maps - unmaps:
        fail(f"arena facts {maps} maps / {unmaps} unmaps vs stats total "
             f"{num('allocated total')} current {num('allocated current')}")
    bad = {k: v for k, v in (l.split() for l in sc.splitlines()[1:] if l.strip())
           if k in ("unexpected_count", "check_disagree", "gen_mispredicted", "gc_unclosed",
                    "learn_rejected") and v != "0"}
    if bad:
        fail(f"recorder self-check not clean: {bad}")
    print(f"{colls} collections bracketed, {maps} arena maps / {unmaps} unmaps agree with the "
          f"stats text")

def live_at_phase(path, name):
    """Live MEM+OBJ blocks when PHASE name is reached (= sys.getallocatedblocks() there)."""
    dom, live = {}, 0
    for line in events(path):
        h, a = parse(line)
        if h == "alloc":
            dom[a[0]] = a[2]
            live += a[2] in ("mem", "obj")
        elif h == "free":
            live -= dom.pop(a[0]) in ("mem", "obj")
        elif h == "phase" and a[0] == name:
            return live
    fail(f"no phase {name}")

def check_blocks(path, expected):
    live = live_at_phase(path, "blocks")
    # sys.getallocatedblocks() counted before its own int result was allocated
    if live != int(expected) + 1:
        fail(f"live MEM+OBJ blocks at the mark {live}, sys.getallocatedblocks() {expected} (+1)")
    print(f"live MEM+OBJ blocks {live} = sys.getallocatedblocks() {expected} + its result")

def check_regions(path, expected_file):
    """GC-flagged allocs minus GC-flagged frees between region markers = CPython's count delta."""
    want = [int(x) for x in open(expected_file).read().split()]
    flags, got, cur = {}, [], None
    for line in events(path):
        h, a = parse(line)
        if h == "alloc":
            flags[a[0]] = "gc" in a[3:]
            if cur is not None and flags[a[0]]:
                cur += 1
        elif h == "free":
            if cur is not None and flags.pop(a[0]):
                cur -= 1
            else:
                flags.pop(a[0], None)
        elif h == "phase" and a[0] == "region-begin":
            cur = 0
        elif h == "phase" and a[0] == "region-end":
            got.append(cur)
            cur = None
    if got != want:
        fail(f"trace GC deltas {got} vs gc.get_count() deltas {want}")
    print(f"GC-flagged allocs - frees per region {got} = CPython's generation-0 count movement")

def check_triggers(path):
    """Simulate generation 0 from the GC flags (+1 per GC alloc, -1 if > 0 per GC free, 0 at each
    GC_BEGIN): every automatic collection begins right after the alloc where the count passes
    the threshold (only gc.callbacks' own events in between), and no collection begins
    otherwise unless the program asked for it (GC_CONTROL collect). Each automatic collection
    carries its PHASE gc.trigger mark, with no alloc between the crossing alloc and the mark."""
    flags, count, thr, enabled = {}, 0, 700, True
    explicit, armed, since, n_auto, n_skipped, n_explicit = False, False, 0, 0, 0, 0
    marked, allocs_since = False, 0
    for line in events(path):
        h, a = parse(line)
        if h == "phase":
            if a[0] == "gc.trigger":
                if not armed or allocs_since or marked:
                    fail(f"gc.trigger where the simulated count did not just pass the threshold "
                         f"(armed {armed}, {allocs_since} allocs since, marked {marked})")
                marked = True
            elif a[0] == "gc.skipped":
                if not armed or since:
                    fail("gc.skipped where the simulated count did not just pass the threshold")
                armed = False
                n_skipped += 1
            continue
        if h == "gc" and a[0] == "collect":  # GC_CONTROL: the program called gc.collect()
            if armed:
                fail("gc.collect while an automatic collection was due")
            explicit = True
            continue
        if h == "gc" and a[0] in ("disable", "enable"):
            enabled = a[0] == "enable"
            continue
        if h == "gc" and a[0] == "threshold":
            thr = int(a[1])
            continue
        if h == "gc" and a[0] == "begin":
            if armed:
                if not marked:
                    fail("an automatic collection without its gc.trigger mark")
                n_auto += 1
            elif explicit:
                n_explicit += 1
            else:
                fail(f"a collection began at simulated count {count} without a crossing")
            armed = explicit = marked = False
            count = 0
            continue
        if armed and h in ("alloc", "free", "realloc", "died"):  # graph reconciliation is free
            since += 1
            if since > 40:
                fail(f"count passed {thr} ({count}) but no collection began: {line}")
        if h == "alloc":
            allocs_since += 1
            flags[a[0]] = "gc" in a[3:]
            if flags[a[0]]:
                count += 1
                if enabled and thr and count > thr and not armed and not explicit:
                    armed, since, allocs_since = True, 0, 0
        elif h in ("free", "died"):  # in graph traces an object's free is its DIED check
            if flags.pop(a[0], False) and count > 0:
                count -= 1
    print(f"{n_auto} automatic collections, each marked right after the alloc where the "
          f"simulated count passed {thr}; {n_explicit} requested; {n_skipped} crossings with an "
          f"exception set (gc.skipped)")

def check_graph(path):
    st = stats_of(path)
    sc = dict(l.split() for l in st.get("text", "").splitlines()[1:] if l.strip())
    objs, died, obj_frees = set(), 0, 0
    for line in events(path):
        h, a = parse(line)
        if h == "alloc" and "object" in a[3:]:
            objs.add(a[0])
        elif h == "died":
            died += 1
    if not objs or not died:
        fail(f"{len(objs)} objects, {died} deaths")
    # Objects freed (DIED) never outnumber objects allocated; no count reaches 0 before CPython
    # freed the object (a free list holds its objects, docs/recorder.md "Graph mode" rule 1).
    if died > len(objs) or sc.get("graph_premature") != "0":
        fail(f"{died} deaths of {len(objs)} objects, {sc.get('graph_premature')} premature")
    print(f"{len(objs)} objects, {died} DIED checks, {sc.get('graph_links')} links, "
          f"{sc.get('graph_gc_deaths')} deaths left to the collector, "
          f"{sc.get('graph_premature')} counts that reached 0 early")

def check_typenames(path, prefix, rounds, per):
    """Classes PREFIX0 .. PREFIX{rounds-1} each have a TYPE record of their own and exactly `per`
    instances written under it (class_reuse.py: a class at an earlier class's address)."""
    names, count = {}, {}
    for line in events(path):
        h, a = parse(line)
        if h == "type":
            names[a[0]] = a[1]
        elif h == "alloc" and "object" in a[3:]:
            t = next((w[5:] for w in a[3:] if w.startswith("type=")), None)
            if t is not None:
                count[names.get(t)] = count.get(names.get(t), 0) + 1
    want = {f"{prefix}{i}": int(per) for i in range(int(rounds))}
    got = {k: count.get(k, 0) for k in want}
    if got != want:
        fail("instances per class: " + ", ".join(f"{k} {v}" for k, v in got.items() if v != want[k]))
    print(f"{rounds} classes, {per} instances each, each under its own name")

def peak_live(path):
    size, live, peak = {}, 0, 0
    for line in events(path):
        h, a = parse(line)
        if h == "alloc":
            size[a[0]] = int(a[1]); live += int(a[1])
        elif h == "free":
            live -= size.pop(a[0])
        elif h == "realloc":
            live += int(a[1]) - size[a[0]]; size[a[0]] = int(a[1])
        peak = max(peak, live)
    return peak

def check_peak(path, lo, hi):
    p = peak_live(path)
    if not (int(lo) <= p <= int(hi)):
        fail(f"peak live bytes {p} outside [{lo}, {hi}]")
    print(f"peak live bytes {p} within [{lo}, {hi}]")

if __name__ == "__main__":
    globals()["check_" + sys.argv[1]](*sys.argv[2:])
