-- 04-heap-multiples.lua: collectors at heap sizes that are multiples of the minimum heap, after
-- Hertz and Berger (OOPSLA 2005): replay time against heap size / minimum heap, one curve per
-- collector. mark-sweep runs in a fixed heap (marksweep:heap=N); its minimum heap is found by
-- bisection (the smallest N whose replay does not fail with "heap too small", to 1%). Reference
-- counting and CPython's generational collector take no heap size: they are drawn as flat lines
-- at their own time. Times are hyperfine medians of whole replays, relative to reference
-- counting (which frees every acyclic object at the event it dies: the nearest thing here to
-- the explicit freeing Hertz and Berger compare against). Multiples as in running-ng (MMTk).
--   heapreplay run scripts/experiments/04-heap-multiples.lua [size=small|full]
local size = param("size", "full")
local S = ({
  small = {gc_long = 10, gc_max = 12, gc_iters = 1, genmix = "50K", docs = 150, runs = 2, warmup = 0},
  full  = {gc_long = 16, gc_max = 16, gc_iters = 2, genmix = "1M", docs = 2000, runs = 5, warmup = 1},
})[size] or error("size must be small or full, not " .. tostring(size))

local multiples = {1.0, 1.417, 1.893, 2.429, 3.024, 3.679, 4.393, 5.167, 6.0}
local ALLOC = "pymalloc:preset=3.11"

-- The smallest marksweep:heap=N that completes, to 1% (each step is one cached replay).
local function min_heap(ctx, trace)
  local r = ctx.replay(trace, {alloc = ALLOC, gc = "generational"})
  local hi = r.replay.peak_live_bytes -- everything allocated and not yet freed: an upper bound
  while not ctx.try_replay(trace, {alloc = ALLOC, gc = ("marksweep:heap=%d"):format(hi)}) do
    hi = hi * 2
  end
  local lo = 0
  while hi - lo > math.max(64, hi // 100) do
    local mid = (lo + hi) // 2
    if ctx.try_replay(trace, {alloc = ALLOC, gc = ("marksweep:heap=%d"):format(mid)}) then
      hi = mid
    else
      lo = mid
    end
  end
  return hi
end

experiment {
  name = "heap-multiples",
  title = "Collectors at multiples of the minimum heap (after Hertz and Berger 2005)",
  traces = {
    gcbench = gen("gcbench", {long = S.gc_long, max = S.gc_max, iters = S.gc_iters}),
    genmix = gen("genmix", {events = S.genmix, seed = 2}),
    jsonlike = gen("json-like", {docs = S.docs}),
  },
  prepare = function(ctx)
    ctx.data.min_heap = {}
    for _, t in ipairs({"gcbench", "genmix", "jsonlike"}) do
      ctx.data.min_heap[t] = min_heap(ctx, t)
      io.stderr:write(("[run] heap-multiples: minimum heap of %s: %d bytes\n"):format(t, ctx.data.min_heap[t]))
    end
  end,
  grid = {trace = {"gcbench", "genmix", "jsonlike"}, collector = {"marksweep", "generational", "refcount"},
          multiple = multiples},
  order = {"collector", "multiple"},
  filter = function(p) return p.collector == "marksweep" or p.multiple == 1.0 end,
  alloc = ALLOC,
  gc = function(p, ctx)
    if p.collector ~= "marksweep" then return p.collector end
    return ("marksweep:heap=%d"):format(math.ceil(p.multiple * ctx.data.min_heap[p.trace]))
  end,
  hyperfine = {warmup = S.warmup, runs = S.runs},
  -- hyperfine medians, relative to reference counting; error bars from the interquartile ranges
  derive = function(row, ctx)
    row.min_heap = ctx.data.min_heap[row.trace]
    for _, b in ipairs(ctx.rows) do
      if b.trace == row.trace and b.collector == "refcount" then
        row.time_rel = row.hf_median_s / b.hf_median_s
        local ra = (row.hf_q3_s - row.hf_q1_s) / 2 / row.hf_median_s
        local rb = (b.hf_q3_s - b.hf_q1_s) / 2 / b.hf_median_s
        row.time_rel_err = row.time_rel * math.sqrt(ra ^ 2 + (row == b and 0 or rb ^ 2))
      end
    end
  end,
  -- the collectors without a heap size become flat lines over the multiples
  finish = function(ctx)
    local rows = {}
    local names = {marksweep = "mark-sweep in a fixed heap", generational = "generational (CPython 3.11), no heap limit",
                   refcount = "reference counting, no heap limit (the baseline)"}
    for _, r in ipairs(ctx.rows) do
      local xs = r.collector == "marksweep" and {r.multiple} or multiples
      for _, x in ipairs(xs) do -- a flat line's error bar only at its first point
        local flat = r.collector ~= "marksweep"
        rows[#rows + 1] = {trace = r.trace, collector = names[r.collector], multiple = x,
                           time_rel = r.time_rel,
                           time_rel_err = (not flat or x == 1.0) and r.time_rel_err or 0,
                           collections = r.collections, gc_ms = r.gc_ns / 1e6}
      end
    end
    ctx.tables.curves = {rows = rows, columns = {"trace", "collector", "multiple", "time_rel",
                                                 "time_rel_err", "collections", "gc_ms"}}
  end,
  labels = {trace = {gcbench = "GCBench trees", genmix = "genmix", jsonlike = "json-like documents"}},
  figures = {
    {name = "time-vs-heap", data = "curves", x = "multiple", y = "time_rel", yerr = "time_rel_err",
     series = "collector", panel = "trace", cols = 3, xmin = 0.8, xmax = 6.2, ymin = 0,
     xlabel = "heap size / minimum heap", ylabel = "replay time / reference counting",
     extra = "set xtics (1, 2, 3, 4, 5, 6)",
     title = "Run time against heap size (hyperfine medians, bars: interquartile range)"},
    {name = "collections-vs-heap", data = "curves", x = "multiple", y = "collections",
     where = function(r) return r.collector:match("^mark") end, series = "trace",
     logy = true, errors = "none", xmin = 0.8, xmax = 6.2, xlabel = "heap size / minimum heap",
     ylabel = "mark-sweep collections (log scale)", extra = "set xtics (1, 2, 3, 4, 5, 6)",
     labels = {gcbench = "GCBench trees", genmix = "genmix", jsonlike = "json-like documents"},
     title = "Collections needed in a fixed heap"},
  },
}
