-- 06-refcounts.lua: how large do reference counts get? The largest count (external references +
-- links in) each object reaches, as a histogram over objects, after Shahriyar, Blackburn and
-- Frampton ("Down for the count?", ISMM 2012), on recorded Python programs (graph mode) and on
-- the graph generators. In recorded traces the objects are CPython's GC-capable objects
-- (containers, instances); strings, ints and floats are plain blocks and not counted.
--   heapreplay run scripts/experiments/06-refcounts.lua [size=small|full]
local size = param("size", "full")
local S = ({
  small = {scale = 0.2, n = 3000, genmix = "60K", gcbench = 10, docs = 150},
  full  = {scale = 2, n = 100000, genmix = "2M", gcbench = 16, docs = 3000},
})[size] or error("size must be small or full, not " .. tostring(size))

-- one bin per width of a count field: the counts that need exactly k bits (2^(k-1) .. 2^k - 1)
local bins = {{1, 1, "1"}, {2, 3, "2-3"}, {4, 7, "4-7"}, {8, 15, "8-15"}, {16, 31, "16-31"},
              {32, 63, "32-63"}, {64, 127, "64-127"}, {128, 255, "128-255"},
              {256, math.huge, "256+"}}
local names = {["py-mixed"] = "Python: JSON, regex, AST (recorded)",
               ["py-objects"] = "Python: objects and links (recorded)",
               genmix = "genmix (generated)", gcbench = "GCBench (generated)",
               ["json-like"] = "json-like (generated)"}

experiment {
  name = "refcounts",
  title = "Largest reference count per object (after Shahriyar et al. 2012)",
  command = "refcounts",
  traces = {
    ["py-mixed"] = record("workloads/mixed.py", {mode = "graph", args = {S.scale}}),
    ["py-objects"] = record("workloads/objects.py", {mode = "graph", args = {S.n}}),
    genmix = gen("genmix", {events = S.genmix, seed = 4}),
    gcbench = gen("gcbench", {long = S.gcbench, max = S.gcbench, iters = 1}),
    ["json-like"] = gen("json-like", {docs = S.docs}),
  },
  grid = {trace = {"py-mixed", "py-objects", "json-like", "genmix", "gcbench"}},
  labels = {trace = names},
  finish = function(ctx)
    local hist, fit = {}, {}
    local function thousands(n)
      local s = tostring(math.floor(n))
      repeat local k; s, k = s:gsub("^(%d+)(%d%d%d)", "%1,%2") until k == 0
      return s
    end
    for i, rec in ipairs(ctx.records) do
      local row, r = ctx.rows[i], rec.result
      -- the key names each trace with its number of objects (the shares' denominator)
      local series = ("%s, %s objects"):format(names[row.trace], thousands(r.objects))
      for _, b in ipairs(bins) do
        local n = 0
        for _, h in ipairs(r.hist) do
          if h.count >= b[1] and h.count <= b[2] then n = n + h.objects end
        end
        hist[#hist + 1] = {trace = row.trace, series = series, bin = b[3], objects = n,
                           percent = r.objects > 0 and 100 * n / r.objects or 0}
      end
      for bits = 1, 8 do
        -- x is shifted a little per trace ("dodged"), so that traces with nearly the same share
        -- (all near 100% at one bit) do not hide each other's points
        fit[#fit + 1] = {trace = row.trace, series = series, bits = bits,
                         x = bits + (i - (#ctx.records + 1) / 2) * 0.06, objects = r.fit[bits],
                         percent = r.objects > 0 and 100 * r.fit[bits] / r.objects or 0}
      end
    end
    ctx.tables.histogram = {rows = hist, columns = {"trace", "series", "bin", "objects", "percent"}}
    ctx.tables.bits = {rows = fit, columns = {"trace", "series", "bits", "x", "objects", "percent"}}
  end,
  figures = {
    {name = "histogram", template = "bars", data = "histogram", x = "bin", y = "percent",
     series = "series", keytitle = "", logy = true, errors = "none", ymin = 0.001,
     xlabel = "largest reference count reached (one bin per bit of a count field)",
     ylabel = "objects (%, log scale)",
     title = "How high reference counts go (no bar: no object in that bin)", width = 1.3},
    {name = "overflow", data = "bits", x = "x", y = function(r) return 100 - r.percent end,
     series = "series", keytitle = "", errors = "none", logy = true,
     xlabel = "bits in a reference-count field",
     ylabel = "objects that overflow (%, log scale)", extra = "set xtics 1,1,8", xmin = 0.6, xmax = 8.4,
     title = "Objects a k-bit count cannot hold (a series ends where none overflow)"},
  },
}
