-- jobs.lua: the experiment timed by benchmarks/jobs.sh: 16 configurations of pymalloc (pool and
-- arena sizes) replaying one trace, given as trace=PATH (made beforehand, so that only the sweep
-- is timed). No figures: the sweep and its results are what is measured.
local pools, arenas = {"4K", "8K", "16K", "32K"}, {"256K", "1M", "4M", "16M"}
local specs = {}
for _, p in ipairs(pools) do
  for _, a in ipairs(arenas) do specs[#specs + 1] = ("pymalloc:preset=3.11,pool=%s,arena=%s"):format(p, a) end
end
experiment {
  name = "jobs-bench",
  traces = {t = file(params.trace or error("give trace=PATH"))},
  grid = {alloc = specs},
  metrics = {"peak_footprint", "wall_ns"},
}
