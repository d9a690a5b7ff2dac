-- 03-gc-thresholds.lua: CPython's generational collector under other thresholds: threshold0
-- from 100 to 10,000 allocations (CPython: 700) and the gen1/gen2 factors (CPython: 10, 10).
-- Pause p99 and max, total collection time, and peak heap (bytes in use, which includes garbage
-- the collector has not reached yet): the trade-off between pauses and memory.
--   heapreplay run scripts/experiments/03-gc-thresholds.lua [size=small|full]
-- Generated graph traces only (allocation-only traces carry no object graph to collect).
-- Recorded graph traces replay under any thresholds, but no collector can reclaim a cycle of
-- theirs earlier than CPython found it (docs/recorder.md, "Which collectors a recorded graph
-- trace supports"), which would make the thresholds below CPython's look worse than they are.
local size = param("size", "full")
local S = ({
  small = {genmix = "60K", gc_long = 10, gc_max = 10, gc_iters = 1, cycles = "20K", reps = 2},
  full  = {genmix = "2M", gc_long = 16, gc_max = 16, gc_iters = 2, cycles = "300K", reps = 5},
})[size] or error("size must be small or full, not " .. tostring(size))

experiment {
  name = "gc-thresholds",
  title = "Generational collector: thresholds against pauses, collection time and memory",
  traces = {
    genmix = gen("genmix", {events = S.genmix, seed = 1}),
    gcbench = gen("gcbench", {long = S.gc_long, max = S.gc_max, iters = S.gc_iters}),
    cycles = gen("cycles", {count = S.cycles, seed = 1}),
  },
  grid = {
    -- (json-like is left out: each document's dicts die by counting before count[0] reaches
    -- even 100, so CPython's collector never runs on it, whatever the threshold)
    trace = {"genmix", "gcbench", "cycles"},
    t0 = {100, 200, 500, 700, 1000, 2000, 5000, 10000},
    factors = {"5,5", "10,10", "20,20"},
  },
  order = {"factors", "t0"},
  alloc = "pymalloc:preset=3.11",
  gc = function(p) return ("generational:%d,%s"):format(p.t0, p.factors) end,
  repetitions = S.reps,
  metrics = {"collections", "collections_gen0", "collections_gen1", "collections_gen2",
             "pause_p50_ns", "pause_p99_ns", "pause_max_ns", "gc_ns", "objects_visited",
             "peak_live_bytes", "extra_peak_bytes", "peak_footprint", "drag_mean_events", "wall_ns"},
  -- the memory cost of a threshold: peak bytes in use above the smallest peak of any
  -- configuration on the same trace (the live data itself is the same for all)
  derive = function(row, ctx)
    local least = math.huge
    for _, r in ipairs(ctx.rows) do
      if r.trace == row.trace then least = math.min(least, r.peak_live_bytes) end
    end
    row.extra_peak_bytes = row.peak_live_bytes - least
  end,
  labels = {
    factors = {["5,5"] = "gen1/gen2 factors 5, 5", ["10,10"] = "factors 10, 10 (CPython)",
               ["20,20"] = "factors 20, 20"},
    trace = {genmix = "genmix", gcbench = "GCBench trees", cycles = "small cycles"},
  },
  figures = {
    {name = "pause-p99", x = "t0", y = "pause_p99_ns", yscale = 1e-6, series = "factors",
     panel = "trace", logx = true, logy = true, xlabel = "threshold0 (allocations, log scale)",
     ylabel = "pause p99 (ms, log scale)", extra = "set xtics (100, 300, 1000, 3000, 10000)",
     title = "99th-percentile collection pause (mean of repetitions, bars: their range)"},
    {name = "pause-max", x = "t0", y = "pause_max_ns", yscale = 1e-6, series = "factors",
     panel = "trace", logx = true, logy = true, xlabel = "threshold0 (allocations, log scale)",
     ylabel = "longest pause (ms, log scale)", extra = "set xtics (100, 300, 1000, 3000, 10000)",
     title = "Longest collection pause"},
    {name = "gc-time", x = "t0", y = "gc_ns", yscale = 1e-6, series = "factors", panel = "trace",
     logx = true, logy = true, xlabel = "threshold0 (allocations, log scale)",
     ylabel = "total collection time (ms, log scale)", extra = "set xtics (100, 300, 1000, 3000, 10000)",
     title = "Total time in collections"},
    {name = "peak-heap", x = "t0", y = "extra_peak_bytes", yscale = 1 / 1024, series = "factors",
     panel = "trace", logx = true, ymin = 0, xlabel = "threshold0 (allocations, log scale)",
     ylabel = "extra peak heap (KiB)", extra = "set xtics (100, 300, 1000, 3000, 10000)",
     title = "Garbage held at the peak: peak bytes in use above the trace's smallest peak"},
    -- work (objects the collections examined), not time, on x: it is exact, where totals of
    -- tens of milliseconds move by more than the differences between neighbouring thresholds
    -- (gc-time.png has the times). GCBench is left out: its trees hold no cycles, so no
    -- threshold holds garbage there (extra peak heap 0 in peak-heap.png).
    {name = "tradeoff", x = "objects_visited", xscale = 1e-3, y = "extra_peak_bytes",
     yscale = 1 / 1024, where = {trace = {"genmix", "cycles"}}, series = "factors",
     panel = "trace", logx = true, errors = "none", by = "t0", ymin = 0,
     xlabel = "objects examined (thousands, log scale)",
     ylabel = "extra peak heap (KiB)",
     title = "Trade-off: collection work against garbage held (one point per threshold0, 100 ... 10,000)"},
  },
}
