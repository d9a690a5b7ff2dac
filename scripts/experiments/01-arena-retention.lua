-- 01-arena-retention.lua: arena retention after Evan Jones (2005): pymalloc's footprint over
-- time under the release policies of Python 2.4 (arenas never freed), 2.5 (empty arenas freed)
-- and 3.11 (one empty arena kept), on the seed scenario (N x 16-byte blocks allocated, all
-- freed, then a small working heap) and on a recorded Python program doing the same with floats.
-- The presets differ in arena size too (256 KiB arenas and 4 KiB pools up to 2.5, 1 MiB and
-- 16 KiB in 3.11), so 3.11's curve climbs in coarser steps and can lie above 2.4's while the heap
-- grows; the legend says so, since a reader would otherwise expect "never freed" to be on top.
--   heapreplay run scripts/experiments/01-arena-retention.lua [size=demo|small|full]
local size = param("size", "full")
local S = ({
  demo  = {blocks = "2M", floats = 300000},
  small = {blocks = "256K", floats = 50000},
  full  = {blocks = "10M", floats = 2000000},
})[size] or error("size must be demo, small or full, not " .. tostring(size))

local names = {
  ["pymalloc:preset=2.4"]  = "Python 2.4: 256 KiB arenas, never freed",
  ["pymalloc:preset=2.5"]  = "Python 2.5: 256 KiB arenas, freed when empty",
  ["pymalloc:preset=3.11"] = "Python 3.11: 1 MiB arenas, one empty kept",
}

experiment {
  name = "arena-retention",
  title = "Arena retention: pymalloc release policies of Python 2.4, 2.5 and 3.11",
  description = "Footprint over time (allocator accounting, sampled every ~1/400 of the trace) "
    .. "of the seed scenario and of a recorded Python program.",
  traces = {
    seed = gen("seed-arena", {blocks = S.blocks, work = 20000}),
    python = record("workloads/retention.py", {args = {S.floats}}),
  },
  grid = {trace = {"seed", "python"},
          alloc = {"pymalloc:preset=2.4", "pymalloc:preset=2.5", "pymalloc:preset=3.11"}},
  gc = "generational:700,10,10",
  -- about 400 samples per trace, whatever its length
  timeline = function(p, ctx) return math.max(1000, ctx.traces[p.trace].info.events // 400) end,
  labels = {alloc = names, trace = {seed = "seed scenario (generated)", python = "recorded Python program"}},
  metrics = {"events", "peak_live_bytes", "peak_footprint", "footprint", "arenas_allocated",
             "arenas_released", "peak_arenas", "arenas", "fragmentation_peak", "peak_rss", "wall_ns"},
  -- the footprint curves plus the live bytes (the same for every allocator) as a reference
  finish = function(ctx)
    local rows = {}
    for _, t in ipairs(ctx.timeline) do
      rows[#rows + 1] = {trace = t.trace, series = names[t.alloc], event = t.event,
                         mib = t.footprint / 2^20}
      if t.alloc == "pymalloc:preset=3.11" then
        rows[#rows + 1] = {trace = t.trace, series = "live data (bytes requested)", event = t.event,
                           mib = t.live_bytes / 2^20}
      end
    end
    ctx.tables.footprint = {rows = rows, columns = {"trace", "series", "event", "mib"}}
  end,
  figures = {
    {name = "footprint-over-time", data = "footprint", x = "event", xscale = 1e-6, y = "mib",
     series = "series", panel = "trace", style = "lines", keytitle = "",
     xlabel = "trace events (millions)",
     ylabel = "footprint: arenas + large blocks (MiB)",
     -- large blocks (over 512 bytes, or 256 up to 3.7) go to malloc under every policy: the
     -- recorded program's 2.4 MB list array is freed once its floats have died, so 2.4's curve drops
     -- there too, by that block and not by an arena
     title = "Arena retention: Python 2.4 never releases an arena (its drop is a large block freed)"},
  },
}
