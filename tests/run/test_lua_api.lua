-- test_lua_api.lua: the Lua API (TAP). Run as: heapreplay run tests/run/test_lua_api.lua tmp=DIR
-- Bad arguments must give clear errors that name the function, the argument or option, and the
-- caller's line; good calls must give the documented results.
local tmp = params.tmp or error("give tmp=DIR")
hr.remove_tree(tmp)
hr.mkdir(tmp)
local n, failed = 0, 0
local function ok(cond, name)
  n = n + 1
  if not cond then failed = failed + 1 end
  print(("%s %d - %s"):format(cond and "ok" or "not ok", n, (name:gsub("\n", " "))))
end
local THIS = debug.getinfo(1, "S").short_src
-- expect_error(pattern, f, ...): f raises an error matching pattern (plain text), at this file
local function expect_error(what, pattern, f, ...)
  local line = debug.getinfo(2, "l").currentline
  local okc, err = pcall(f, ...)
  err = tostring(err)
  local good = not okc and err:find(pattern, 1, true) ~= nil
  ok(good, ("%s: error '%s'"):format(what, good and err or ("got: " .. (okc and "no error" or err))))
  return err, line
end
-- wrappers that are not tail calls, so that the error position is this file
local function call(f, ...) local r = f(...) return r end

-- {==== bad arguments ====
local trace = tmp .. "/t.hrt"
hr.gen("seed-arena", {blocks = 2000, work = 10}, trace)

local err = expect_error("replay: unknown option", "bad argument #2 to 'hr.replay' (unknown option 'allco' (did you mean 'alloc'?); known: alloc, check, gc, json, no_touch, partial, timeline)",
  function() local r = hr.replay(trace, {allco = "libc"}) return r end)
ok(err:find(THIS, 1, true) == 1, "replay: the error starts with this script's name and line (" .. err:sub(1, 40) .. ")")
expect_error("replay: option type", "option 'alloc' must be a string, not number", call, hr.replay, trace, {alloc = 5})
expect_error("replay: trace type", "bad argument #1 to 'hr.replay' (string expected, got no value)", call, hr.replay)
expect_error("replay: missing trace", "no trace '" .. tmp .. "/nope.hrt'", call, hr.replay, tmp .. "/nope.hrt")
expect_error("replay: timeline", "option 'timeline' must be a positive number", call, hr.replay, trace, {timeline = 0})
expect_error("replay: timeline integer", "option 'timeline' must be an integer, not number", call, hr.replay, trace, {timeline = 1.5})
expect_error("replay: unknown allocator", "unknown allocator 'nope'", call, hr.replay, trace, {alloc = "nope"})
expect_error("replay: unknown collector parameter", "marksweep", call, hr.replay, trace, {gc = "marksweep:heap=x"})
expect_error("gen: parameter type", "bad argument #2 to 'hr.gen' (parameter 'blocks' must be a string or a number, not table)",
  call, hr.gen, "seed-arena", {blocks = {}}, tmp .. "/x.hrt")
expect_error("gen: unknown generator", "hr.gen: unknown generator 'nope'", call, hr.gen, "nope", {}, tmp .. "/x.hrt")
expect_error("gen: unknown parameter", "has no parameter 'blokcs'", call, hr.gen, "seed-arena", {blokcs = 1}, tmp .. "/x.hrt")
expect_error("gen: output", "bad argument #3 to 'hr.gen' (string expected, got no value)", call, hr.gen, "seed-arena", {})
expect_error("gen: array-style parameters", "bad argument #2 to 'hr.gen' (parameter names are strings, not number 1)",
  call, hr.gen, "seed-arena", {2000}, tmp .. "/x.hrt")
expect_error("gen: a comma in a value", "hr.gen: a parameter value cannot hold ',' ('blocks=10,work=3')",
  call, hr.gen, "seed-arena", {blocks = "10,work=3"}, tmp .. "/x.hrt")
expect_error("record: out required", "option 'out' (the trace to write) is required", call, hr.record, "x.py", {})
expect_error("record: mode", "option 'mode' must be \"alloc\" or \"graph\"", call, hr.record, "x.py", {out = "x", mode = "objects"})
expect_error("info: missing file", "cannot open", call, hr.info, tmp .. "/nope.hrt")
expect_error("info: options", "bad argument #2 to 'hr.info' (unknown option 'partal'; known: partial)", call, hr.info, trace, {partal = true})
expect_error("refcounts: type", "bad argument #1 to 'hr.refcounts' (string expected, got table)", function() local x = hr.refcounts({}) return x end)
expect_error("sweep: jobs option", "bad argument #2 to 'hr.sweep' (option 'jobs' must be an integer from 1 to 1024)", call, hr.sweep, {}, {jobs = 0})
expect_error("sweep: job field", "bad argument #1 to 'hr.sweep' (jobs[1] has an unknown field 'agrv')", call, hr.sweep, {{agrv = {"true"}}})
expect_error("sweep: argv", "jobs[1].argv must be an array of strings", call, hr.sweep, {{key = "x"}})
expect_error("sweep: argv element", "argv[2] is a table, not a string", call, hr.sweep, {{argv = {"true", {}}}})
-- a timeout that is not a positive number used to mean no timeout at all
for _, t in ipairs({"abc", -1, 0, 0 / 0}) do
  expect_error("sweep: timeout " .. tostring(t), "jobs[1].timeout must be a positive number of seconds", call, hr.sweep,
    {{argv = {"true"}, timeout = t}})
end
do -- a stdout that cannot be opened: the job fails and its stderr says why
  local r = hr.sweep({{argv = {"true"}, stdout = tmp .. "/no-such-dir/out", stderr = tmp .. "/so.err"}})
  ok(r[1].status == "failed" and r[1].stderr:find("cannot open " .. tmp .. "/no-such-dir/out for standard output", 1, true),
     "sweep: a stdout that cannot be opened is named in the job's stderr (" .. tostring(r[1].stderr) .. ")")
end
expect_error("exec: option", "bad argument #2 to 'hr.exec' (unknown option 'stdot'; known: stdout, stderr, cwd)", call, hr.exec, {"true"}, {stdot = true})
expect_error("write_csv: columns", "no columns", call, hr.write_csv, tmp .. "/x.csv", {}, {})
expect_error("write_csv: row", "row 2 is not a table", call, hr.write_csv, tmp .. "/x.csv", {{a = 1}, 5}, {"a"})
expect_error("json_decode: bad", "bad JSON: ',' or '}' expected", call, hr.json_decode, '{"a": 1 "b"}', "doc.json")
expect_error("json_decode: names the document and line", "doc.json:2:", call, hr.json_decode, '{"a":\n  [1,, 2]}', "doc.json")
expect_error("json_encode: function", "json: cannot encode a function", call, hr.json_encode, {f = print})
expect_error("plot: template", "no gnuplot template", call, hr.plot, {template = "nope", dir = tmp, name = "x"})
expect_error("plot: name", "field 'name' (letters, digits", call, hr.plot, {template = "lines", dir = tmp, name = "a b"})
expect_error("plot: reserved variable", "variable 'out' is set by hr.plot itself", call, hr.plot, {template = "lines", dir = tmp, name = "x", vars = {out = "y"}})
expect_error("hyperfine: runs", "option 'runs' must be at least 2", call, hr.hyperfine, {{"true"}}, {runs = 1})
expect_error("hyperfine: commands", "commands[1] must be an argv array or a string", call, hr.hyperfine, {5})
expect_error("run: options", "bad argument #2 to 'hr.run' (unknown option 'job'", call, hr.run, "x.lua", {job = 2})
expect_error("run: what", "experiment script path or table expected, got number", call, hr.run, 5)
expect_error("num: not a number", "parameter value 'abc' is not a number", call, hr.num, "abc")
expect_error("num: nan", "parameter value 'nan' is not a number", call, hr.num, "nan")
ok(hr.num("2x") == 2 and hr.num("4K") == 4096, "num: a factor and a size")

-- experiment declarations: errors name the experiment file and the line of experiment{...}
local function write(path, text) local f = assert(io.open(path, "w")); f:write(text); f:close() end
local bad = {
  {"unknown field", 'experiment {\n  name = "x", grdi = {}, traces = {t = file("t.hrt")}}\n',
   "bad1.lua:1: experiment: unknown field 'grdi'"},
  {"missing name", 'experiment {traces = {}}\n', "bad2.lua:1: experiment: 'name' is required"},
  {"grid names an unknown trace", '\n\nexperiment {name = "x", traces = {a = gen("churn", {})}, grid = {trace = {"b"}}}\n',
   "bad3.lua:3: experiment 'x': grid.trace names 'b' (did you mean 'a'?), which is not among the traces (a)"},
  {"figure field", 'experiment {name = "x", traces = {a = gen("churn")}, figures = {{name = "f", x = "a", y = "b", colour = 1}}}\n',
   "bad4.lua:1: experiment 'x': figures[1] has an unknown field 'colour'"},
  {"field type", 'experiment {name = "x", traces = {a = gen("churn")}, repetitions = "3"}\n',
   "bad5.lua:1: experiment: field 'repetitions' must be a number, not string"},
  {"syntax error", 'experiment {name = "x",\n  traces = {a = gen("churn")\n', "bad6.lua:3:"},
  {"runtime error in the script", 'local x = nil\nlocal y = x.field\n', "bad7.lua:2: attempt to index a nil value"},
  {"record option", 'experiment {name = "x", traces = {a = record("w.py", {mod = "graph"})}}\n',
   "bad8.lua:1: record: bad argument #2 (unknown option 'mod' (did you mean 'mode'?); known: args, mode)"},
  {"a bad allocator value, before any job", 'experiment {name = "x", traces = {a = gen("churn", {events = 100})}, alloc = "pymalloc:pool=3K"}\n',
   "bad9.lua:1: experiment 'x': pymalloc: pool=3K must be a power of two"},
  {"a collector parameter, before any job", 'experiment {name = "x", traces = {a = gen("churn", {events = 100})}, grid = {gc = {"marksweep", "marksweep:triger=3x"}}}\n',
   "bad10.lua:1: experiment 'x': collector 'marksweep' has no parameter 'triger' (did you mean 'trigger'?)"},
  {"a generator's unknown parameter", 'experiment {name = "x", traces = {a = gen("churn", {events = 100, sed = 2})}}\n',
   "bad11.lua:1: experiment 'x': cannot make trace 'a' (gen churn events=100 sed=2): heapreplay: generator 'churn' has no parameter 'sed' (did you mean 'seed'?)"},
  {"unknown allocator in the grid", 'experiment {name = "x", traces = {a = gen("churn", {events = 100})}, grid = {alloc = {"libcc"}}}\n',
   "bad12.lua:1: experiment 'x': allocator 'libcc' is not built in"},
  {"an error in an experiment function", 'experiment {name = "x", traces = {a = gen("churn", {events = 100})},\n  alloc = function(p)\n    return p.nothing.x\n  end}\n',
   "bad13.lua:3: attempt to index a nil value (field 'nothing')"},
  {"a misspelt field gets a suggestion", 'experiment {name = "x", traces = {a = gen("churn")}, repetitons = 2}\n',
   "bad14.lua:1: experiment: unknown field 'repetitons' (did you mean 'repetitions'?) (known: "},
  {"no suggestion when nothing is close", 'experiment {name = "x", traces = {a = gen("churn")}, zzzzzz = 2}\n',
   "bad15.lua:1: experiment: unknown field 'zzzzzz' (known: "},
  {"a timeout that is not positive", 'experiment {name = "x", traces = {a = gen("churn", {events = 100})}, timeout = -1}\n',
   "bad16.lua:1: experiment 'x': timeout must be a positive number of seconds"},
}
for i, b in ipairs(bad) do
  local path = tmp .. "/bad" .. i .. ".lua"
  write(path, b[2])
  local okr, e = pcall(hr.run, path, {out = tmp .. "/res", quiet = true})
  e = tostring(e)
  local good = not okr and e:find(b[3], 1, true) ~= nil
  ok(good, ("experiment %s: '%s'"):format(b[1], good and e:match("[^\n]*") or ("got: " .. e)))
end
ok(hr.exists(tmp .. "/res/x/results.csv") == nil, "failed experiments left no results.csv behind")

-- {==== good calls ====
local info = hr.info(trace)
ok(info.kind == "alloc" and info.events == 4013 and info.counts.alloc == 2010 and info.crc32:match("^%x+$")
   and info.peak_live_bytes == 32000, ("info: kind, events, counts, crc32, peak (%s %d)"):format(info.kind, info.events))
local r = hr.replay(trace, {alloc = "pymalloc:preset=2.4", timeline = 1000})
ok(r.schema == "heapreplay-replay/1" and r.allocator.arenas_released == 0 and r.config.allocator == "pymalloc:preset=2.4",
  "replay: the JSON as a table (schema, allocator stats, config)")
ok(#r.timeline == 6 and r.timeline[5].event == 4000 and r.process.maxrss > 0,
  ("replay: timeline samples and the child's process figures (%d samples)"):format(#r.timeline))
local m = hr.metrics(r)
ok(m.peak_footprint == r.allocator.peak_footprint and m.collections == 0 and m.proc_maxrss > 0,
  "metrics: one flat table of every scalar")
local g = tmp .. "/g.hrt"
hr.gen("cycles", {count = 300, seed = 1}, g)
local rc = hr.refcounts(g)
ok(rc.objects > 0 and rc.kind == "graph" and rc.fit[16] == rc.objects and #rc.hist >= 1,
  ("refcounts: %d objects, largest %d"):format(rc.objects, rc.max))
local v = {a = 1, b = {1, 2.5, "x\"y\n"}, c = {d = true, e = hr.null}, f = -3e-7}
local back = hr.json_decode(hr.json_encode(v, true))
ok(back.a == 1 and back.b[2] == 2.5 and back.b[3] == "x\"y\n" and back.c.d == true and back.c.e == hr.null
   and back.f == -3e-7 and math.type(back.a) == "integer", "json: encode/decode round trip")
ok(hr.json_encode({b = 1, a = 2}) == '{"a":2,"b":1}', "json: keys sorted (deterministic output)")
hr.write_csv(tmp .. "/r.csv", {{a = 1, b = "x,\"y\""}, {a = 2.5}}, {"a", "b"})
local rows, cols = hr.read_csv(tmp .. "/r.csv")
ok(#rows == 2 and cols[2] == "b" and rows[1].b == 'x,"y"' and rows[2].a == 2.5 and rows[2].b == nil,
  "csv: write/read round trip with quoting and empty fields")
local res = hr.sweep({{argv = {"sh", "-c", "exit 3"}, key = "a", stderr = tmp .. "/a.err"},
                      {argv = {"true"}, key = "b"}}, {jobs = 2, keep_going = true, log = tmp .. "/sweep.log"})
ok(res[1].status == "failed" and res[1].exit == 3 and res[2].status == "ok" and res.done == 1 and res.failed == 1,
  "sweep: statuses and exit codes")
local log = hr.read_file(tmp .. "/sweep.log")
ok(log:find("start a") and log:find("failed a exit 3") and log:find("done b"), "sweep: the job log")
local done = {}
hr.sweep({{argv = {"true"}, key = "x"}, {argv = {"true"}, key = "y"}},
  {jobs = 1, on_done = function(i, rr) done[#done + 1] = i .. rr.status end})
ok(#done == 2 and done[1] == "1ok" and done[2] == "2ok", "sweep: on_done is called in order with jobs = 1")
expect_error("sweep: an error in on_done propagates", "boom",
  call, hr.sweep, {{argv = {"true"}}}, {on_done = function() error("boom") end})
hr.write_file(tmp .. "/d1.dat", '"two points" x y lo hi n\n1 1 1 1 1\n2 4 4 4 1\n')
local files = hr.plot{template = "lines", dir = tmp, name = "p", formats = {"png", "svg"},
  vars = {datafile = {"d1.dat"}, nseries = {1}, ptitle = {""}, npanels = 1, xlabel = "x", ylabel = "y"}}
ok(#files == 2 and hr.exists(tmp .. "/p.png") == "file" and hr.read_file(tmp .. "/p.png"):sub(2, 4) == "PNG",
  "plot: PNG and SVG from the lines template")
ok(hr.read_file(tmp .. "/p.gp"):find("load '", 1, true) ~= nil, "plot: a reusable NAME.gp is written")
local hf = hr.hyperfine({{"true"}}, {runs = 2, warmup = 0})
ok(#hf == 1 and hf[1].mean > 0 and #hf[1].times == 2, "hyperfine: its JSON export as a table")
ok(#hr.allocators() >= 3 and #hr.collectors() >= 4 and #hr.generators() >= 6, "registries")
print("1.." .. n)
if failed > 0 then os.exit(1) end
