-- all.lua: every bundled experiment, in turn; each writes results/NAME/ with its figures.
--   heapreplay run scripts/experiments/all.lua [size=small|full] [--jobs N] [--resume]
suite {
  "01-arena-retention.lua",
  "02-pool-arena-sweep.lua",
  "03-gc-thresholds.lua",
  "04-heap-multiples.lua",
  "05-allocators.lua",
  "06-refcounts.lua",
}
