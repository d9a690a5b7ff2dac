-- 02-pool-arena-sweep.lua: pymalloc's pool and arena sizes, from the classic 4 KiB pools in
-- 256 KiB arenas (Python <= 3.9) to 16 KiB / 1 MiB (3.10+) and beyond: peak footprint,
-- fragmentation (peak footprint / peak bytes in use) and the replay time per allocator call
-- (hyperfine median of the whole replay divided by the allocator calls), next to the same replay
-- on the `null` allocator: the harness alone. (Subtracting the harness's time from each replay's
-- was tried and rejected: the difference of two whole-process timings is dominated by their
-- noise on a shared machine, and went negative.)
--   heapreplay run scripts/experiments/02-pool-arena-sweep.lua [size=small|full]
local size = param("size", "full")
local S = ({
  small = {seed = "64K", churn = "200K", genmix = "100K", scale = 0.2, runs = 2, warmup = 0},
  full  = {seed = "2M", churn = "4M", genmix = "2M", scale = 2, runs = 10, warmup = 1},
})[size] or error("size must be small or full, not " .. tostring(size))

local pools, arenas = {"4K", "16K", "64K"}, {"256K", "1M", "4M", "16M"}
local layouts = {}
for _, pool in ipairs(pools) do
  for _, arena in ipairs(arenas) do layouts[#layouts + 1] = pool .. "/" .. arena end
end
layouts[#layouts + 1] = "null" -- the harness alone: subtracted from the time per operation

local KiB = {["4K"] = 4, ["16K"] = 16, ["64K"] = 64, ["256K"] = 256, ["1M"] = 1024,
             ["4M"] = 4096, ["16M"] = 16384}

experiment {
  name = "pool-arena-sweep",
  title = "pymalloc pool and arena sizes",
  traces = {
    seed = gen("seed-arena", {blocks = S.seed, work = 20000}),
    churn = gen("churn", {events = S.churn, seed = 1}),
    genmix = gen("genmix", {events = S.genmix, seed = 1}),
    python = record("workloads/mixed.py", {args = {S.scale}}),
  },
  grid = {trace = {"seed", "churn", "genmix", "python"}, layout = layouts},
  alloc = function(p)
    if p.layout == "null" then return "null" end
    local pool, arena = p.layout:match("^(.+)/(.+)$")
    return ("pymalloc:preset=3.11,pool=%s,arena=%s"):format(pool, arena)
  end,
  gc = "generational:700,10,10",
  hyperfine = {warmup = S.warmup, runs = S.runs},
  derive = function(row)
    local pool, arena = row.layout:match("^(.+)/(.+)$")
    row.pool_kib, row.arena_kib = KiB[pool], KiB[arena]
    row.calls = row.requests + row.frees
    if row.calls > 0 then
      row.ns_per_call = row.hf_median_s / row.calls * 1e9
      row.ns_per_call_err = (row.hf_q3_s - row.hf_q1_s) / 2 / row.calls * 1e9
    end
  end,
  -- the null allocator as a flat reference line over the arena sizes
  finish = function(ctx)
    local rows = {}
    for _, r in ipairs(ctx.rows) do
      if r.layout == "null" then
        for _, a in ipairs(arenas) do
          rows[#rows + 1] = {trace = r.trace, series = "null allocator: the harness alone",
                             arena_kib = KiB[a], ns = r.ns_per_call, err = a == "256K" and r.ns_per_call_err or 0}
        end
      else
        rows[#rows + 1] = {trace = r.trace, series = r.pool_kib .. " KiB pools", arena_kib = r.arena_kib,
                           ns = r.ns_per_call, err = r.ns_per_call_err}
      end
    end
    ctx.tables.timing = {rows = rows, columns = {"trace", "series", "arena_kib", "ns", "err"}}
  end,
  labels = {trace = {seed = "seed scenario", churn = "churn (allocation stream)",
                     genmix = "genmix (graph)", python = "recorded Python program"}},
  figures = {
    {name = "peak-footprint", x = "arena_kib", y = "peak_footprint", yscale = 1 / 2^20,
     series = function(r) return r.pool_kib and (r.pool_kib .. " KiB pools") end,
     where = function(r) return r.layout ~= "null" end, panel = "trace", logx = 2, logy = true,
     xlabel = "arena size", ylabel = "peak footprint (MiB, log scale)",
     extra = 'set xtics ("256K" 256, "1M" 1024, "4M" 4096, "16M" 16384)',
     title = "Peak footprint against arena size"},
    {name = "fragmentation", x = "arena_kib", y = "fragmentation_peak",
     series = function(r) return r.pool_kib and (r.pool_kib .. " KiB pools") end,
     where = function(r) return r.layout ~= "null" end, panel = "trace", logx = 2,
     xlabel = "arena size", ylabel = "peak footprint / peak bytes in use",
     extra = 'set xtics ("256K" 256, "1M" 1024, "4M" 4096, "16M" 16384)',
     title = "Fragmentation at the peak (1.0 = none)"},
    {name = "time-per-call", data = "timing", x = "arena_kib", y = "ns", yerr = "err",
     series = "series", panel = "trace", logx = 2, ymin = 0,
     xlabel = "arena size", ylabel = "replay time per allocator call (ns)",
     extra = 'set xtics ("256K" 256, "1M" 1024, "4M" 4096, "16M" 16384)',
     title = "Replay time per allocator call (hyperfine medians, bars: interquartile range)"},
  },
}
