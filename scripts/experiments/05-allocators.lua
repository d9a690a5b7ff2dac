-- 05-allocators.lua: every allocator backend built in, on every bundled generator, the Lua
-- workload and recorded Python programs: wall time of the whole replay (hyperfine) and peak
-- footprint. Backends that `heapreplay allocators` does not list (jemalloc, mimalloc, tcmalloc
-- when not built) are skipped, and provenance.json says which ran.
--   heapreplay run scripts/experiments/05-allocators.lua [size=small|full]
-- Graph traces replay under CPython's collector (generational:700,10,10); allocation-only
-- traces replay their own frees. Recorded traces are recorded in alloc mode (graph-mode
-- recordings do not replay under a collector yet: see 03-gc-thresholds.lua).
local size = param("size", "full")
local S = ({
  small = {seed = "128K", intlist = "100K", cycle = "50K", genmix = "60K", gcbench = 10,
           cycles = "20K", churn = "200K", random = "100K", docs = 150, scale = 0.2,
           floats = 50000, runs = 2, warmup = 0},
  full  = {seed = "10M", intlist = "10M", cycle = "1M", genmix = "2M", gcbench = 16,
           cycles = "200K", churn = "10M", random = "2M", docs = 2000, scale = 2,
           floats = 2000000, runs = 5, warmup = 1},
})[size] or error("size must be small or full, not " .. tostring(size))

local wanted = {
  {"pymalloc:preset=3.11", "pymalloc model, Python 3.11"},
  {"pymalloc:preset=2.4", "pymalloc model, Python 2.4"},
  {"cpython", "CPython 3.11 obmalloc (real)"},
  {"libc", "glibc malloc"},
  {"jemalloc", "jemalloc"},
  {"mimalloc", "mimalloc"},
  {"tcmalloc", "tcmalloc"},
}
local built = {}
for _, n in ipairs(hr.allocators()) do built[n] = true end
local allocs, names = {}, {}
for _, w in ipairs(wanted) do
  local name = w[1]:match("^[^:]+")
  if built[name] then
    allocs[#allocs + 1] = w[1]
    names[w[1]] = w[2]
  else
    io.stderr:write(("[run] allocators: '%s' is not built in; skipped\n"):format(name))
  end
end

local traces = {
  ["seed-arena"] = gen("seed-arena", {blocks = S.seed}),
  ["seed-intlist"] = gen("seed-intlist", {n = S.intlist}),
  ["seed-cycle"] = gen("seed-cycle", {n = S.cycle}),
  genmix = gen("genmix", {events = S.genmix, seed = 3}),
  gcbench = gen("gcbench", {long = S.gcbench, max = S.gcbench, iters = 1}),
  cycles = gen("cycles", {count = S.cycles, seed = 3}),
  churn = gen("churn", {events = S.churn, seed = 3}),
  random = gen("random", {events = S.random, seed = 3, kind = "alloc"}),
  ["json-like"] = gen("json-like", {docs = S.docs}),
  ["py-mixed"] = record("workloads/mixed.py", {args = {S.scale}}),
  ["py-retention"] = record("workloads/retention.py", {args = {S.floats}}),
}
local order = {"seed-arena", "seed-intlist", "seed-cycle", "genmix", "gcbench", "cycles", "churn",
               "random", "json-like", "py-mixed", "py-retention"}
local BASE = "pymalloc:preset=3.11"

experiment {
  name = "allocators",
  title = "Allocator backends on every bundled and recorded trace",
  traces = traces,
  grid = {trace = order, alloc = allocs},
  -- the real obmalloc has no aligned allocation, which the 'random' trace asks for
  filter = function(p) return not (p.trace == "random" and p.alloc == "cpython") end,
  gc = "generational:700,10,10",
  hyperfine = {warmup = S.warmup, runs = S.runs},
  labels = {alloc = names},
  -- hyperfine medians relative to the pymalloc 3.11 model; error bars from interquartile ranges
  derive = function(row, ctx)
    for _, b in ipairs(ctx.rows) do
      if b.trace == row.trace and b.alloc == BASE then
        row.time_rel = row.hf_median_s / b.hf_median_s
        local ra = (row.hf_q3_s - row.hf_q1_s) / 2 / row.hf_median_s
        local rb = (b.hf_q3_s - b.hf_q1_s) / 2 / b.hf_median_s
        row.time_rel_err = row.time_rel * math.sqrt(ra ^ 2 + (row == b and 0 or rb ^ 2))
        row.footprint_rel = b.peak_footprint > 0 and row.peak_footprint / b.peak_footprint or nil
      end
    end
  end,
  metrics = {"events", "hf_median_s", "hf_q1_s", "hf_q3_s", "hf_mean_s", "hf_stddev_s", "hf_runs",
             "time_rel", "time_rel_err",
             "peak_footprint", "footprint_rel", "fragmentation_peak", "peak_live_bytes",
             "peak_rss", "proc_maxrss", "wall_ns"},
  figures = {
    {name = "time", template = "bars", x = "trace", y = "time_rel", yerr = "time_rel_err",
     series = "alloc", xrot = 30, xlabel = "", ylabel = "replay time / pymalloc 3.11 model",
     extra = "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#555555'; "
       .. "set label 'no cpython bar for random: the real obmalloc has no aligned allocation' "
       .. "at graph 0.01, graph 0.97 font ',11' tc rgb '#555555'",
     title = "Whole-replay wall time (hyperfine medians, bars: interquartile range)", width = 1.3},
    {name = "footprint", template = "bars", x = "trace", y = "peak_footprint", yscale = 1 / 2^20,
     series = "alloc", xrot = 30, logy = true, errors = "none", xlabel = "",
     ylabel = "peak footprint (MiB, log scale)", width = 1.3,
     -- mimalloc's footprint is its committed bytes: whole 32 MiB segments under its default
     -- eager commit, mostly never touched (docs/allocators.md); this figure's key says so, the
     -- RSS figure shows what was resident
     labels = {mimalloc = "mimalloc (footprint: whole 32 MiB segments)"},
     title = "Peak footprint by each allocator's own accounting"},
    {name = "rss", template = "bars", x = "trace", y = "proc_maxrss", yscale = 1 / 2^20,
     series = "alloc", xrot = 30, logy = true, errors = "none", xlabel = "", width = 1.3,
     ylabel = "peak RSS (MiB, log scale)",
     title = "Peak resident set size of the replay process (engine included)"},
  },
}
