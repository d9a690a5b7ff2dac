-- 02-pool-arena-sweep.lua: pymalloc's pool and arena sizes, from the classic 4 KiB pools in
-- 256 KiB arenas (Python <= 3.9) to 16 KiB / 1 MiB (3.10+) and beyond: peak footprint,
-- fragmentation (peak footprint / peak bytes in use) and the allocator's time per operation
-- (hyperfine wall time of the whole replay, minus the same replay on the `null` allocator,
-- divided by the allocator calls).
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
  derive = function(row, ctx)
    local pool, arena = row.layout:match("^(.+)/(.+)$")
    row.pool_kib, row.arena_kib = KiB[pool], KiB[arena]
    row.ops = row.requests + row.frees
    for _, b in ipairs(ctx.rows) do -- the null allocator's time on the same trace
      if b.trace == row.trace and b.layout == "null" and row.layout ~= "null" and row.ops > 0 then
        row.alloc_ns_per_op = (row.hf_mean_s - b.hf_mean_s) / row.ops * 1e9
        row.alloc_ns_per_op_err = math.sqrt(row.hf_stddev_s ^ 2 + b.hf_stddev_s ^ 2) / row.ops * 1e9
      end
    end
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
    {name = "time-per-op", x = "arena_kib", y = "alloc_ns_per_op", yerr = "alloc_ns_per_op_err",
     series = function(r) return r.pool_kib and (r.pool_kib .. " KiB pools") end,
     where = function(r) return r.layout ~= "null" end, panel = "trace", logx = 2,
     xlabel = "arena size", ylabel = "allocator time per call (ns)",
     extra = 'set xtics ("256K" 256, "1M" 1024, "4M" 4096, "16M" 16384)',
     title = "Time per allocator call (hyperfine, harness subtracted; bars: 1 s.d.)"},
  },
}
