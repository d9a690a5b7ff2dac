-- experiment.lua: the experiment driver behind `heapreplay run EXPERIMENT.lua` and hr.run
-- (embedded into the binary; docs/experiments.md describes experiments, docs/lua-api.md the API).
--
-- An experiment script declares what to run; the driver runs it:
--
--   script --load--> experiment{...} declarations (checked at once: errors name file:line)
--     traces   generated (heapreplay gen) or recorded (heapreplay record), as parallel jobs,
--              kept in results/NAME/traces/ and reused while their recipe is unchanged
--     prepare  the experiment's own logic before the sweep (e.g. find a minimum heap), with
--              ctx.replay: single replays cached in results/NAME/runs/cache/
--     grid     expanded into points (trace x parameters x allocator x collector), filtered;
--              each point x repetition is a job with a key: a hash of what the job executes
--     sweep    jobs in parallel (hr.sweep), one child process each; a job is finished when
--              its record results/NAME/runs/KEY.json has been renamed into place; --resume
--              skips finished jobs and redoes the rest; hyperfine timing jobs run alone
--     outputs  results.csv (one row per run), timeline.csv, provenance.json, experiment.lua and
--              figures/, built in a staging folder and moved into place only when all of
--              them were written: an error leaves the previous outputs untouched.
local hr = ...
local D = {}
local kinds = hr._kinds
local did_you_mean = hr._did_you_mean

local FIELDS = {
  name = "string", title = "string", description = "string", traces = "table", grid = "table",
  alloc = "string|function", gc = "string|function", command = "string",
  repetitions = "number", timeline = "number|function", check = "boolean", hyperfine = "table",
  metrics = "table", labels = "table", filter = "function", prepare = "function",
  derive = "function", finish = "function", figures = "table", timeout = "number",
  keep_going = "boolean", order = "table", shuffle = "boolean",
}
local FIGURE_FIELDS = {
  name = "string", title = "string", template = "string", data = "string|table",
  where = "table|function", x = "string|function", y = "string|function",
  series = "string|function", panel = "string|function", xlabel = "string", ylabel = "string",
  xscale = "number", yscale = "number", logx = "boolean|number", logy = "boolean|number",
  errors = "string", yerr = "string|function", style = "string", key = "string",
  extra = "string", xmin = "number", xmax = "number", ymin = "number", ymax = "number",
  labels = "table", width = "number", height = "number", cols = "number", xrot = "number",
  sort = "function", by = "string|function", keytitle = "string",
}
local COMMANDS = {replay = true, refcounts = true}

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

local function type_ok(v, want)
  for w in want:gmatch("[^|]+") do if type(v) == w then return true end end
  return false
end

-- An error message without the driver's own position (a message for the script's author).
local function bare(msg) return (tostring(msg):gsub("^%[heapreplay [%w%.]+%]:%d+: ", "")) end

local function fail(where, fmt, ...)
  error((where and (where .. ": ") or "") .. fmt:format(...), 0)
end

-- A failure that is not the script's fault, with the exit status heapreplay's commands use
-- (2 bad input: a trace that cannot be read; 3 anything else: a job, the file system). The error
-- is a table {msg, status} that prints as its message; `heapreplay run` exits with the status.
local FAIL_MT = {__tostring = function(t) return t.msg end}
local function fail_status(status, where, fmt, ...)
  error(setmetatable({msg = (where and (where .. ": ") or "") .. fmt:format(...), status = status},
    FAIL_MT), 0)
end

-- Two experiments of one name (in a script, or across a suite's scripts) would share a folder.
local function declared_twice(where, name, first)
  fail(where, "experiment '%s' is declared twice (first at %s): both would write the same "
    .. "results folder", name, first)
end

local function join(dir, p)
  if p:sub(1, 1) == "/" then return p end
  if dir == "." then return p end
  return dir .. "/" .. p
end

-- {==== declarations ====

local function check_figure(where, ename, i, f)
  if type(f) ~= "table" then fail(where, "experiment '%s': figures[%d] must be a table", ename, i) end
  for k, v in pairs(f) do
    local want = FIGURE_FIELDS[k]
    if not want then
      fail(where, "experiment '%s': figures[%d] has an unknown field '%s'%s (known: %s)", ename, i,
        tostring(k), did_you_mean(k, sorted_keys(FIGURE_FIELDS)),
        table.concat(sorted_keys(FIGURE_FIELDS), ", "))
    end
    if not type_ok(v, want) then
      fail(where, "experiment '%s': figures[%d].%s must be %s, not %s", ename, i, k, kinds(want),
        type(v))
    end
  end
  if not f.name or not f.name:match("^[%w%-_%.]+$") then
    fail(where, "experiment '%s': figures[%d] needs a name made of letters, digits, '-', '_'", ename, i)
  end
  local tpl = f.template or "lines"
  if tpl ~= "lines" and tpl ~= "bars" then
    fail(where, "experiment '%s': figure '%s': template must be \"lines\" or \"bars\"", ename, f.name)
  end
  if not f.x or not f.y then fail(where, "experiment '%s': figure '%s' needs x and y", ename, f.name) end
  -- a column's name makes a default axis label; a function has none (it used to be drawn as
  -- "function: 0x55..."), so its figure must say what the axis shows
  for _, a in ipairs({"x", "y"}) do
    if type(f[a]) == "function" and not f[a .. "label"] then
      fail(where, "experiment '%s': figure '%s': %s is a function, so give %slabel (what the axis "
        .. "shows, with its unit)", ename, f.name, a, a)
    end
  end
  if f.errors and f.errors ~= "stddev" and f.errors ~= "minmax" and f.errors ~= "none" then
    fail(where, "experiment '%s': figure '%s': errors must be \"stddev\", \"minmax\" or \"none\"",
      ename, f.name)
  end
end

local function check_experiment(e, where)
  if type(e) ~= "table" then fail(where, "experiment{...} expects a table") end
  for k, v in pairs(e) do
    local want = FIELDS[k]
    if not want then
      fail(where, "experiment: unknown field '%s'%s (known: %s)", tostring(k),
        did_you_mean(k, sorted_keys(FIELDS)), table.concat(sorted_keys(FIELDS), ", "))
    end
    if not type_ok(v, want) then
      fail(where, "experiment: field '%s' must be %s, not %s", k, kinds(want), type(v))
    end
  end
  if e.name == nil then
    fail(where, "experiment: 'name' is required (letters, digits, '-', '_', '.'): it names "
      .. "the results folder")
  end
  if not e.name:match("^[%w%-_][%w%-_%.]*$") then
    fail(where, "experiment: name '%s' is not a folder name (letters, digits, '-', '_', '.', not "
      .. "starting with '.'): it names the results folder", e.name)
  end
  local cmd = e.command or "replay"
  if not COMMANDS[cmd] then
    fail(where, "experiment '%s': command must be \"replay\" or \"refcounts\", not \"%s\"", e.name, cmd)
  end
  if not e.traces or next(e.traces) == nil then
    fail(where, "experiment '%s': 'traces' must name at least one trace", e.name)
  end
  for name, t in pairs(e.traces) do
    if type(name) ~= "string" or not name:match("^[%w%-_%.]+$") then
      fail(where, "experiment '%s': trace names are words (letters, digits, '-', '_'), not '%s'",
        e.name, tostring(name))
    end
    if type(t) ~= "table" or not t.kind then
      fail(where, "experiment '%s': trace '%s' must be gen(...), record(...) or file(...)", e.name, name)
    end
  end
  if e.repetitions and (e.repetitions < 1 or e.repetitions ~= math.floor(e.repetitions)) then
    fail(where, "experiment '%s': repetitions must be a whole number >= 1", e.name)
  end
  for i, k in ipairs(e.order or {}) do -- a name not in the grid used to be ignored silently
    if type(k) ~= "string" or not (e.grid and e.grid[k] ~= nil) then
      local names = table.concat(sorted_keys(e.grid or {}), ", ")
      fail(where, "experiment '%s': order[%d] = %s names no parameter of the grid (%s)", e.name, i,
        tostring(k), names ~= "" and names or "the grid is empty")
    end
  end
  if e.timeout ~= nil and not (e.timeout > 0) then
    fail(where, "experiment '%s': timeout must be a positive number of seconds", e.name)
  end
  if type(e.timeline) == "number" and (e.timeline < 1 or e.timeline ~= math.floor(e.timeline)) then
    fail(where, "experiment '%s': timeline must be a whole number of events >= 1", e.name)
  end
  for k, v in pairs(e.grid or {}) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
      fail(where, "experiment '%s': grid keys are identifiers, not '%s'", e.name, tostring(k))
    end
    if k == "rep" or k == "run" or k == "experiment" then
      fail(where, "experiment '%s': grid key '%s' is reserved", e.name, k)
    end
    if type(v) ~= "table" or #v == 0 then
      fail(where, "experiment '%s': grid.%s must be a non-empty array of values", e.name, k)
    end
    for i, x in ipairs(v) do
      if type(x) ~= "string" and type(x) ~= "number" and type(x) ~= "boolean" then
        fail(where, "experiment '%s': grid.%s[%d] must be a string, number or boolean", e.name, k, i)
      end
    end
  end
  for _, k in ipairs({"alloc", "gc"}) do
    if e.grid and e.grid[k] and e[k] then
      fail(where, "experiment '%s': give '%s' in the grid or as a field, not both", e.name, k)
    end
  end
  if e.grid and e.grid.trace then
    for _, t in ipairs(e.grid.trace) do
      if not e.traces[t] then
        fail(where, "experiment '%s': grid.trace names '%s'%s, which is not among the traces (%s)",
          e.name, tostring(t), did_you_mean(t, sorted_keys(e.traces)),
          table.concat(sorted_keys(e.traces), ", "))
      end
    end
  end
  if e.hyperfine then
    for k, v in pairs(e.hyperfine) do
      if (k ~= "warmup" and k ~= "runs") or math.type(v) ~= "integer" then
        fail(where, "experiment '%s': hyperfine takes warmup = N and runs = N (integers)", e.name)
      end
    end
    if (e.hyperfine.runs or 5) < 2 then
      fail(where, "experiment '%s': hyperfine.runs must be at least 2", e.name)
    end
    if cmd ~= "replay" then fail(where, "experiment '%s': hyperfine times replays only", e.name) end
  end
  for i, f in ipairs(e.figures or {}) do check_figure(where, e.name, i, f) end
  local seen = {}
  for _, f in ipairs(e.figures or {}) do
    if seen[f.name] then fail(where, "experiment '%s': two figures are named '%s'", e.name, f.name) end
    seen[f.name] = true
  end
end

-- The environment an experiment script runs in: the standard globals, hr, and the
-- declaration functions. Declarations record their call site for error messages.
local function make_env(script, opts, decls)
  local sdir = hr.dirname(script)
  local env = setmetatable({}, {__index = _G})
  env.hr = hr
  env.params = opts.params or {}
  env.here = sdir
  local function site(level)
    local info = debug.getinfo(level + 1, "Sl")
    return info and (info.short_src .. ":" .. (info.currentline or 0)) or script
  end
  -- param(name, default): a command-line parameter (key=value), a number when it reads as one
  env.param = function(name, default)
    local v = env.params[name]
    if v == nil then return default end
    local ok, n = pcall(hr.num, v, default)
    return ok and n or v
  end
  env.experiment = function(e)
    local where = site(2)
    check_experiment(e, where)
    for _, d in ipairs(decls) do
      if d.kind == "experiment" and d.e.name == e.name then declared_twice(where, e.name, d.e._where) end
    end
    e._where, e._script, e._dir = where, script, sdir
    decls[#decls + 1] = {kind = "experiment", e = e}
    return e
  end
  env.suite = function(list)
    local where = site(2)
    if type(list) ~= "table" or #list == 0 then fail(where, "suite{...} expects an array of scripts") end
    for i, f in ipairs(list) do
      if type(f) ~= "string" then fail(where, "suite: entry %d must be a script path", i) end
      decls[#decls + 1] = {kind = "suite", path = join(sdir, f), where = where}
    end
  end
  -- traces
  env.gen = function(name, params)
    local where = site(2)
    if type(name) ~= "string" then fail(where, "gen: bad argument #1 (generator name expected)") end
    if params ~= nil and type(params) ~= "table" then fail(where, "gen: bad argument #2 (parameter table expected)") end
    return {kind = "gen", name = name, params = params or {}, where = where, dir = sdir}
  end
  env.record = function(pyscript, o)
    local where = site(2)
    if type(pyscript) ~= "string" then fail(where, "record: bad argument #1 (Python script path expected)") end
    o = o or {}
    if type(o) ~= "table" then fail(where, "record: bad argument #2 (options table expected)") end
    for k in pairs(o) do
      if k ~= "mode" and k ~= "args" then
        fail(where, "record: bad argument #2 (unknown option '%s'%s; known: args, mode)", tostring(k),
          did_you_mean(k, {"args", "mode"}))
      end
    end
    if o.mode and o.mode ~= "alloc" and o.mode ~= "graph" then
      fail(where, "record: option 'mode' must be \"alloc\" or \"graph\"")
    end
    return {kind = "record", script = join(sdir, pyscript), mode = o.mode or "alloc",
            args = o.args or {}, where = where}
  end
  env.file = function(path)
    local where = site(2)
    if type(path) ~= "string" then fail(where, "file: bad argument #1 (trace path expected)") end
    local p = path
    if p:sub(1, 1) ~= "/" and not hr.exists(p) then p = join(sdir, path) end
    return {kind = "file", path = p, where = where}
  end
  return env
end

-- {==== helpers ====

local function log(opts, fmt, ...)
  if not opts.quiet then io.stderr:write(("[run] " .. fmt .. "\n"):format(...)) end
end

local function spec_name(spec) return (spec:match("^([^:]+)")) end

local function fmt_value(v)
  if type(v) == "number" and math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
    return tostring(math.tointeger(v))
  end
  return tostring(v)
end

-- Cartesian product of the grid in a fixed order: trace first, then e.order or the keys sorted,
-- alloc and gc last.
local function grid_keys(e)
  local grid, keys, seen = e.grid or {}, {}, {}
  local function add(k) if grid[k] and not seen[k] then keys[#keys + 1] = k; seen[k] = true end end
  add("trace")
  for _, k in ipairs(e.order or {}) do add(k) end
  for _, k in ipairs(sorted_keys(grid)) do if k ~= "alloc" and k ~= "gc" then add(k) end end
  add("alloc"); add("gc")
  return keys
end

local function expand(e, ctx)
  local grid = e.grid or {}
  local keys = grid_keys(e)
  local points = {}
  local function rec(i, p)
    if i > #keys then
      local q = {}
      for k, v in pairs(p) do q[k] = v end
      points[#points + 1] = q
      return
    end
    for _, v in ipairs(grid[keys[i]]) do
      p[keys[i]] = v
      rec(i + 1, p)
    end
    p[keys[i]] = nil
  end
  rec(1, {})
  local out = {}
  local trace_names = sorted_keys(e.traces)
  for _, p in ipairs(points) do
    local list = {p}
    if not p.trace then -- no grid over traces: every trace
      list = {}
      for _, t in ipairs(trace_names) do
        local q = {trace = t}
        for k, v in pairs(p) do q[k] = v end
        list[#list + 1] = q
      end
    end
    for _, q in ipairs(list) do
      if (e.command or "replay") == "replay" then
        if type(e.alloc) == "function" then q.alloc = e.alloc(q, ctx) elseif e.alloc then q.alloc = e.alloc end
        if type(e.gc) == "function" then q.gc = e.gc(q, ctx) elseif e.gc then q.gc = e.gc end
        if type(e.timeline) == "function" then
          local every = e.timeline(q, ctx)
          if math.type(every) ~= "integer" or every < 1 then
            fail(e._where, "experiment '%s': timeline(...) must return a whole number of events >= 1", e.name)
          end
          q._every = every
        elseif e.timeline then
          q._every = e.timeline
        end
        q.alloc = q.alloc or "pymalloc:preset=3.11"
        q.gc = q.gc or "generational:700,10,10"
        if type(q.alloc) ~= "string" or type(q.gc) ~= "string" then
          fail(e._where, "experiment '%s': alloc and gc must resolve to spec strings", e.name)
        end
      end
      if not e.filter or e.filter(q, ctx) then out[#out + 1] = q end
    end
  end
  return out, keys
end

local function point_label(p, keys)
  local parts = {}
  for _, k in ipairs(keys) do if p[k] ~= nil then parts[#parts + 1] = k .. "=" .. fmt_value(p[k]) end end
  return table.concat(parts, " ")
end

-- Free grid parameters (not trace, alloc or gc) whose values change no job: at every point, the
-- other values held, each value gives the same allocator, collector and timeline (the alloc or
-- gc function does not read it). Their rows repeat one replay under different names, which a
-- figure draws as a flat line: a sweep that silently did not happen. Points are compared
-- within a repetition (the job key holds it); a parameter that filter leaves with one value
-- wherever the others are held is not judged.
local function idle_parameters(e, keys, runs)
  local idle = {}
  for _, k in ipairs(keys) do
    if k ~= "trace" and k ~= "alloc" and k ~= "gc" and #e.grid[k] > 1 then
      local groups, judged, used = {}, false, false
      for _, run in ipairs(runs) do
        if run.rep == 1 then
          local sig = {}
          for _, o in ipairs(keys) do
            if o ~= k then sig[#sig + 1] = o .. "=" .. fmt_value(run.point[o]) end
          end
          sig[#sig + 1] = "trace=" .. run.point.trace
          local s = table.concat(sig, ";")
          local g = groups[s]
          if not g then g = {value = run.point[k], what = run.what}; groups[s] = g
          elseif g.value ~= run.point[k] then
            judged = true
            if g.what ~= run.what then used = true end
          end
        end
      end
      if judged and not used then idle[#idle + 1] = k end
    end
  end
  return idle
end

-- {==== traces ====

local function trace_recipe(t)
  if t.kind == "gen" then
    local ps = {}
    for _, k in ipairs(sorted_keys(t.params)) do ps[#ps + 1] = k .. "=" .. fmt_value(t.params[k]) end
    local r = "gen " .. t.name .. (#ps > 0 and (" " .. table.concat(ps, " ")) or "")
    local lua = t.name:find("/") and t.name or nil
    if lua and hr.exists(lua) then r = r .. " lua-crc32=" .. hr.checksum(lua) end
    return r
  elseif t.kind == "record" then
    if not hr.exists(t.script) then fail(t.where, "record: no Python script '%s'", t.script) end
    local crc = hr.checksum(t.script)
    local args = {}
    for i, a in ipairs(t.args) do args[i] = tostring(a) end
    return ("record --mode %s %s (crc32 %s)%s"):format(t.mode, hr.basename(t.script), crc,
      #args > 0 and (" " .. table.concat(args, " ")) or "")
  end
  return "file " .. t.path
end

-- Make the traces that are not there (or whose recipe changed). A trace this folder made that
-- no longer reads (damaged on disk) is made again, once (`remade`); a `file(...)` is the user's
-- and is reported.
local function prepare_traces(e, dirs, opts, remade)
  local traces, jobs, pending = {}, {}, {}
  for _, name in ipairs(sorted_keys(e.traces)) do
    local t = e.traces[name]
    local entry = {name = name, spec = t}
    traces[name] = entry
    if t.kind == "file" then
      if hr.exists(t.path) ~= "file" then fail(t.where, "experiment '%s': no trace file '%s'", e.name, t.path) end
      entry.path, entry.recipe = t.path, trace_recipe(t)
    else
      entry.path = dirs.traces .. "/" .. name .. ".hrt"
      entry.recipe = trace_recipe(t)
      local rfile = dirs.traces .. "/" .. name .. ".recipe"
      local have = hr.exists(entry.path) and hr.exists(rfile) and hr.read_file(rfile) == entry.recipe .. "\n"
      if not have then
        local tmp = dirs.work .. "/trace-" .. name .. ".hrt"
        local argv = {hr.exe()}
        if t.kind == "gen" then
          argv[#argv + 1] = "gen"; argv[#argv + 1] = t.name
          for _, k in ipairs(sorted_keys(t.params)) do argv[#argv + 1] = k .. "=" .. fmt_value(t.params[k]) end
          argv[#argv + 1] = "-o"; argv[#argv + 1] = tmp
        else
          for _, a in ipairs({"record", "-o", tmp, "--mode", t.mode, "--", t.script}) do argv[#argv + 1] = a end
          for _, a in ipairs(t.args) do argv[#argv + 1] = tostring(a) end
        end
        jobs[#jobs + 1] = {argv = argv, key = "trace-" .. name, stderr = tmp .. ".err"}
        pending[#pending + 1] = {entry = entry, tmp = tmp, rfile = rfile}
      end
    end
  end
  if #jobs > 0 then
    log(opts, "%s: making %d trace(s)", e.name, #jobs)
    local res = hr.sweep(jobs, {jobs = opts.jobs, log = dirs.log, label = e.name .. " traces",
      on_done = function(i)
        local p = pending[i]
        local okr, rerr = os.rename(p.tmp, p.entry.path)
        if not okr then
          fail_status(3, e._where, "experiment '%s': cannot make trace '%s': cannot move it to %s: %s",
            e.name, p.entry.name, p.entry.path, tostring(rerr))
        end
        local okw, werr = pcall(hr.write_file, p.rfile, p.entry.recipe .. "\n")
        if not okw then
          fail_status(3, e._where, "experiment '%s': cannot make trace '%s': %s", e.name, p.entry.name, bare(werr))
        end
        os.remove(p.tmp .. ".err")
      end})
    if res.interrupted then
      fail(nil, "interrupted by signal %d while making traces; run again with --resume", res.interrupted)
    end
    for i, r in ipairs(res) do
      if r.status ~= "ok" then
        local p = pending[i]
        local st = r.exit and ("exit status %d"):format(r.exit)
          or r.signal and ("killed by signal %d"):format(r.signal) or r.status
        local why = r.stderr and r.stderr:match("^%s*(.-)%s*$") or ""
        why = why ~= "" and ("%s [%s]"):format(why, st)
          or r.exit and st .. " (a recorded program's own status passes through)" or st
        -- `gen` exits 1 for a usage error (an unknown generator, parameter or bad value): the
        -- script's mistake, like a bad declaration; a recorded program's 1 is its own
        local usage = p.entry.spec.kind == "gen" and r.exit == 1
        fail_status(usage and 1 or 3, p.entry.spec.where, "experiment '%s': cannot make trace '%s' (%s): %s",
          e.name, p.entry.name, p.entry.recipe, why)
      end
    end
  end
  -- trace facts (hr.info decodes the whole trace): cached, keyed by the file's checksum
  for _, name in ipairs(sorted_keys(traces)) do
    local entry = traces[name]
    local crc, bytes = hr.checksum(entry.path)
    local cfile = dirs.traces .. "/" .. name .. ".info.json"
    local okc, cached = pcall(hr.read_json, cfile)
    if okc and type(cached) == "table" and cached.crc32 == crc and cached.bytes == bytes
        and cached.path == entry.path then
      entry.info = cached
    else
      local oki, info = pcall(hr.info, entry.path)
      if not oki and entry.spec.kind ~= "file" and not remade then
        log(opts, "%s: trace '%s' does not read (%s): making it again", e.name, name, bare(info))
        os.remove(entry.path)
        os.remove(dirs.traces .. "/" .. name .. ".recipe")
        return prepare_traces(e, dirs, opts, true)
      end
      if not oki then
        fail_status(2, entry.spec.where, "experiment '%s': trace '%s': %s", e.name, name, bare(info))
      end
      entry.info = info
      hr.write_json(cfile, entry.info)
    end
  end
  return traces
end

-- {==== jobs ====

local function job_key(e, p, rep, trace)
  local parts = {"v1", e.command or "replay", "trace=" .. trace.info.crc32 .. ":" .. trace.info.bytes}
  if (e.command or "replay") == "replay" then
    parts[#parts + 1] = "alloc=" .. p.alloc
    parts[#parts + 1] = "gc=" .. p.gc
    if p._every then parts[#parts + 1] = "timeline=" .. p._every end
    if e.check then parts[#parts + 1] = "check" end
  end
  parts[#parts + 1] = "rep=" .. rep
  return hr.hash(table.concat(parts, ";")), table.concat(parts, ";")
end

local function read_record(path, key)
  if hr.exists(path) ~= "file" then return nil end
  local ok, rec = pcall(hr.read_json, path)
  if ok and type(rec) == "table" and rec.key == key then return rec end
  return nil
end

-- {==== figures: x tics ====

-- The x tic step of each panel of a lines figure (0: gnuplot's choice), so that its labels fit
-- side by side: gnuplot picks the number of tics from the range alone, and in a panel a third
-- of the canvas wide labels such as 100000 150000 ran into each other. Steps are 1, 2 or 5
-- times a power of ten; labels are written in full (gnuplot's %g wrote 1e+06 after 800000).
local function nice_step(raw)
  local mag = 10 ^ math.floor(math.log(raw, 10))
  for _, m in ipairs({1, 2, 5, 10}) do
    if m * mag >= raw * (1 - 1e-9) then return m * mag end
  end
  return 10 * mag
end

local function x_steps(panels, fig, w, cols)
  local steps = {}
  -- characters across one panel of the PNG (the narrowest format), less the y axis's labels
  local avail = 76 * w / cols - 12
  for pi, P in ipairs(panels) do
    local lo, hi = math.huge, -math.huge
    for _, S in ipairs(P.series) do
      for _, c in ipairs(S.xs) do
        if type(c.x) == "number" and c.x == c.x then lo, hi = math.min(lo, c.x), math.max(hi, c.x) end
      end
    end
    lo, hi = fig.xmin or lo, fig.xmax or hi
    local step = 0
    if hi > lo then
      local len = math.max(#("%.10g"):format(lo), #("%.10g"):format(hi))
      local maxtics = math.max(2, math.floor(avail / (len + 3)))
      step = nice_step((hi - lo) / maxtics)
      -- the labels of that step: as long as the ends' plus a fraction's digits
      local frac = step < 1 and math.ceil(-math.log(step, 10) - 1e-9) or 0
      if frac > 0 then
        len = len + frac + 1
        maxtics = math.max(2, math.floor(avail / (len + 3)))
        step = nice_step((hi - lo) / maxtics)
      end
    end
    steps[pi] = math.tointeger(step) or step -- 200000, not 200000.0, in the .gp file
  end
  return steps
end

-- {==== rows ====

local function flatten_result(rec)
  local m = {}
  if rec.command == "refcounts" then
    local r = rec.result
    m.objects, m.refcount_ops, m.max_refcount, m.below_zero = r.objects, r.ops, r.max, r.below_zero
    for b = 1, 8 do
      m["fit_" .. b .. "bit"] = r.objects > 0 and (r.fit[b] / r.objects) or 0
    end
  else
    m = hr.metrics(rec.result)
  end
  if rec.process then
    m.proc_wall_s, m.proc_user_s, m.proc_sys_s = rec.process.wall, rec.process.user, rec.process.sys
    m.proc_maxrss = rec.process.maxrss
  end
  return m
end

local function hf_metrics(hf, m)
  local r = hf.hyperfine
  m.hf_mean_s, m.hf_stddev_s, m.hf_median_s = r.mean, r.stddev, r.median
  m.hf_min_s, m.hf_max_s, m.hf_user_s, m.hf_system_s = r.min, r.max, r.user, r.system
  m.hf_runs = r.times and #r.times or nil
  if r.times and #r.times > 0 then -- quartiles (linear interpolation): robust against noise
    local t = {}
    for i, v in ipairs(r.times) do t[i] = v end
    table.sort(t)
    local function q(p)
      local pos = 1 + (#t - 1) * p
      local lo = math.floor(pos)
      return t[lo] + (t[math.min(lo + 1, #t)] - t[lo]) * (pos - lo)
    end
    m.hf_q1_s, m.hf_q3_s = q(0.25), q(0.75)
  end
end

-- {==== figures ====

local function accessor(spec, scale)
  scale = scale or 1
  if type(spec) == "function" then
    return function(r) local v = spec(r); return type(v) == "number" and v * scale or v end
  end
  return function(r)
    local v = r[spec]
    if type(v) == "number" then return v * scale end
    return v
  end
end

local function label_of(e, fig, col, v)
  local l = fig.labels and fig.labels[v]
  if l == nil and e.labels and col and e.labels[col] then l = e.labels[col][v] end
  if l == nil then l = fmt_value(v) end
  return l
end

local function matches(where, r)
  if where == nil then return true end
  if type(where) == "function" then return where(r) end
  for k, v in pairs(where) do
    if type(v) == "table" then
      local any = false
      for _, x in ipairs(v) do if r[k] == x then any = true end end
      if not any then return false end
    elseif r[k] ~= v then
      return false
    end
  end
  return true
end

local function stats(ys)
  local n, sum = #ys, 0
  local lo, hi = math.huge, -math.huge
  for _, y in ipairs(ys) do sum = sum + y; lo = math.min(lo, y); hi = math.max(hi, y) end
  local mean = sum / n
  local var = 0
  for _, y in ipairs(ys) do var = var + (y - mean) ^ 2 end
  local sd = n > 1 and math.sqrt(var / (n - 1)) or 0
  return mean, sd, lo, hi, n
end

local function gp_str(s) return '"' .. tostring(s):gsub('\\', '\\\\'):gsub('"', '\\"') .. '"' end

local function num(v)
  if math.type(v) == "integer" then return tostring(v) end
  return ("%.10g"):format(v)
end

-- The grid point each row of results.csv and timeline.csv comes from (rows of finish's tables
-- have none): a figure's point that averages rows of several grid points is not a mean over
-- repetitions, and is reported (figure_mixes).
local point_of = setmetatable({}, {__mode = "k"})

-- Group the rows of a figure: panels -> series -> x -> ys, keeping the order of first appearance.
local function group(e, fig, rows)
  local getx, gety = accessor(fig.x, fig.xscale), accessor(fig.y, fig.yscale)
  -- A hyperfine figure (y = "hf_mean_s", ...) without yerr: its error bar is hyperfine's own
  -- standard deviation. The timing is measured once per configuration and copied into every
  -- repetition's row, so the spread over repetitions is 0 and drew bars of zero width.
  local yerr = fig.yerr
  if yerr == nil and type(fig.y) == "string" and fig.y:match("^hf_") and fig.y ~= "hf_runs" then
    yerr = "hf_stddev_s"
  end
  local geterr = yerr and accessor(yerr, fig.yscale)
  local gets = fig.series and accessor(fig.series)
  local getp = fig.panel and accessor(fig.panel)
  local getby = fig.by and accessor(fig.by)
  local panels, pindex = {}, {}
  local dropped = 0
  for _, r in ipairs(rows) do
    local x, y = getx(r), gety(r)
    if (fig.logy and type(y) == "number" and y <= 0) or (fig.logx and type(x) == "number" and x <= 0) then
      dropped = dropped + 1 -- cannot be drawn on a log axis
    elseif x ~= nil and type(y) == "number" and y == y then
      local pv = getp and getp(r) or ""
      local pl = getp and label_of(e, fig, type(fig.panel) == "string" and fig.panel, pv) or ""
      local P = pindex[pl]
      if not P then
        P = {title = pl, series = {}, sindex = {}}
        pindex[pl] = P
        panels[#panels + 1] = P
      end
      local sv = gets and gets(r) or (fig.title or fig.name)
      local sl = gets and label_of(e, fig, type(fig.series) == "string" and fig.series, sv) or tostring(sv)
      local S = P.sindex[sl]
      if not S then
        S = {title = sl, xs = {}, byx = {}}
        P.sindex[sl] = S
        P.series[#P.series + 1] = S
      end
      -- cells: one per x, or with `by` one per value of `by` (x then averaged too, and the
      -- points joined in the order of `by`: a trade-off curve between two measured quantities)
      local byv = getby and getby(r)
      local xk = getby and ("by:" .. tostring(byv)) or (type(x) == "number" and num(x) or tostring(x))
      local cell = S.byx[xk]
      if not cell then
        cell = {x = x, ys = {}, errs = {}, xsum = 0, by = byv}
        S.byx[xk] = cell
        S.xs[#S.xs + 1] = cell
      end
      cell.ys[#cell.ys + 1] = y
      local pt = point_of[r]
      if pt then
        if cell.pt == nil then cell.pt = pt elseif pt ~= cell.pt then cell.other = cell.other or pt end
      end
      if getby and type(x) == "number" then
        cell.xsum = cell.xsum + x
        cell.x = cell.xsum / #cell.ys
      end
      if geterr then cell.errs[#cell.errs + 1] = geterr(r) end
    end
  end
  if fig.sort then
    for _, P in ipairs(panels) do table.sort(P.series, function(a, b) return fig.sort(a.title, b.title) end) end
  end
  return panels, dropped
end

local function cell_stats(cell, mode)
  local mean, sd, lo, hi, n = stats(cell.ys)
  if #cell.errs > 0 then
    local em = stats(cell.errs)
    return mean, mean - em, mean + em, n, em
  end
  if mode == "minmax" then return mean, lo, hi, n, (hi - lo) / 2 end
  if mode == "none" then return mean, mean, mean, n, 0 end
  return mean, mean - sd, mean + sd, n, sd
end

-- Points of a figure that average rows of different grid points (a grid parameter that is
-- neither x, series, panel nor selected by where): their mean and error bars are not over
-- repetitions. Returns nil, or the number of such points, of all points, and the parameters
-- in which the first one's grid points differ.
local function figure_mixes(panels, keys)
  local mixed, total, first = 0, 0, nil
  for _, P in ipairs(panels) do
    for _, S in ipairs(P.series) do
      for _, c in ipairs(S.xs) do
        total = total + 1
        if c.other then mixed = mixed + 1; first = first or c end
      end
    end
  end
  if mixed == 0 then return nil end
  local differ, seen = {}, {}
  for _, k in ipairs({"trace", table.unpack(keys)}) do
    if not seen[k] then
      seen[k] = true
      if fmt_value(first.pt[k]) ~= fmt_value(first.other[k]) then differ[#differ + 1] = k end
    end
  end
  for _, k in ipairs({"alloc", "gc"}) do -- given as functions of free parameters already named
    if #differ == 0 and not seen[k] and first.pt[k] ~= first.other[k] then differ[#differ + 1] = k end
  end
  return mixed, total, differ
end

local function draw_figure(e, fig, data, figdir, opts, keys)
  local rows = {}
  for _, r in ipairs(data) do if matches(fig.where, r) then rows[#rows + 1] = r end end
  if #rows == 0 then
    fail(e._where, "experiment '%s': figure '%s' has no data (check its data and where fields)",
      e.name, fig.name)
  end
  -- a column no row has (a typo): say so, with the columns. Not only x and y: a misspelt
  -- series or panel put every row in one line (configurations averaged as if they were
  -- repetitions, their spread drawn as error bars), a misspelt yerr or by drew without them
  for _, a in ipairs({"x", "y", "series", "panel", "by", "yerr"}) do
    local col = fig[a]
    if type(col) == "string" then
      local found = false
      for _, r in ipairs(rows) do if r[col] ~= nil then found = true; break end end
      if not found then
        fail(e._where, "experiment '%s': figure '%s': %s = '%s' names no column of its rows%s "
          .. "(columns: %s)", e.name, fig.name, a, col, did_you_mean(col, sorted_keys(rows[1])),
          table.concat(sorted_keys(rows[1]), ", "))
      end
    end
  end
  local panels, dropped = group(e, fig, rows)
  if #panels == 0 then
    fail(e._where, "experiment '%s': figure '%s': no row has a number for y%s", e.name, fig.name,
      dropped > 0 and " that a log axis can show (all are <= 0)" or "")
  end
  if dropped > 0 then
    log(opts, "%s: figure '%s': %d value(s) <= 0 left out (log axis)", e.name, fig.name, dropped)
  end
  -- on a log axis mean +- s.d. can go below zero: show the range of the repetitions instead
  local mode = fig.errors or (fig.logy and "minmax" or "stddev")
  local vars = {title = fig.title or "", xlabel = fig.xlabel or tostring(fig.x),
                ylabel = fig.ylabel or tostring(fig.y), extra = fig.extra or ""}
  if fig.key then vars.keypos = fig.key end
  for _, k in ipairs({"xmin", "xmax", "ymin", "ymax", "cols", "xrot"}) do
    if fig[k] then vars[k] = fig[k] end
  end
  vars.logy = fig.logy and 1 or 0
  vars.w, vars.h = fig.width or 1, fig.height or 1
  local any_err = false
  local tpl = fig.template or "lines"
  if tpl == "lines" then
    vars.logx = fig.logx and 1 or 0
    if type(fig.logx) == "number" then vars.logbase = fig.logx end
    vars.style = fig.style or "linespoints"
    local files, titles, ns, flat, flo, fhi = {}, {}, {}, {}, {}, {}
    -- Every panel lists every series, in one order: the template gives series s of a panel
    -- the line type s, and the shared key under the panels is drawn from one panel. A panel
    -- without some series (a filter, a where, values a log axis leaves out) used to number its
    -- series from 1 anew, so its lines took the colours the key gives other series. A series
    -- absent from a panel is a block with one row of NaN (nothing drawn, its line type kept).
    local order, known = {}, {}
    -- a quantity no row has below zero (a time, a count, bytes): mean - s.d. of few repetitions
    -- can be, and its error bar then reached into negative times; such bars stop at zero
    local nonneg = true
    for _, P in ipairs(panels) do
      for _, S in ipairs(P.series) do
        if not known[S.title] then known[S.title] = true; order[#order + 1] = S.title end
        for _, c in ipairs(S.xs) do
          for _, y in ipairs(c.ys) do if not (y >= 0) then nonneg = false end end
        end
      end
    end
    if fig.sort then table.sort(order, function(a, b) return fig.sort(a, b) end) end
    for pi, P in ipairs(panels) do
      local out = {}
      local top, bottom = -math.huge, math.huge -- the panel's extreme means and error bar ends
      for si, stitle in ipairs(order) do
        local S = P.sindex[stitle] or {title = stitle, xs = {}}
        table.sort(S.xs, function(a, b)
          local ka, kb = a.x, b.x
          if fig.by then ka, kb = a.by, b.by end
          if type(ka) == "number" and type(kb) == "number" then return ka < kb end
          return tostring(ka) < tostring(kb)
        end)
        if si > 1 then out[#out + 1] = "\n\n" end
        out[#out + 1] = gp_str(S.title) .. " x y ylow yhigh n\n"
        for _, c in ipairs(S.xs) do
          local m, lo, hi, n, err = cell_stats(c, mode)
          if nonneg then lo = math.max(lo, 0) end
          if n > 1 and mode ~= "none" or #c.errs > 0 then any_err = any_err or err > 0 end
          if type(c.x) ~= "number" then
            fail(e._where, "experiment '%s': figure '%s': x must be a number for lines (got %s "
              .. "%s; hr.num turns a size such as \"256K\" into one, or use template = \"bars\")",
              e.name, fig.name, type(c.x), type(c.x) == "string" and ("%q"):format(c.x) or tostring(c.x))
          end
          top, bottom = math.max(top, m, hi), math.min(bottom, m, lo)
          out[#out + 1] = ("%s %s %s %s %d\n"):format(num(c.x), num(m), num(lo), num(hi), n)
        end
        if #S.xs == 0 then out[#out + 1] = "NaN NaN NaN NaN 0\n" end
      end
      local fname = #panels > 1 and ("%s.p%d.dat"):format(fig.name, pi) or (fig.name .. ".dat")
      hr.write_file(figdir .. "/" .. fname, table.concat(out))
      files[pi], titles[pi], ns[pi] = fname, P.title, #order
      -- every value at the floor (a panel of zeros with ymin = 0): gnuplot would warn of an
      -- empty y range and pick one itself; the template gives such a panel [ymin:ymin+1]
      -- (and without ymin or ymax, a panel whose every value is the same: gnuplot warned the
      -- same way; such a panel gets a range around its value)
      flat[pi], flo[pi], fhi[pi] = 0, 0, 1
      if fig.ymin and not fig.ymax and top <= fig.ymin then
        flat[pi], flo[pi], fhi[pi] = 1, fig.ymin, fig.ymin + 1
      elseif not fig.ymin and not fig.ymax and top == bottom then
        local v = top
        local d = v == 0 and 1 or math.abs(v) * 0.1
        if fig.logy then flat[pi], flo[pi], fhi[pi] = 1, v / 2, v * 2
        else flat[pi], flo[pi], fhi[pi] = 1, v - d, v + d end
      end
    end
    vars.npanels, vars.datafile, vars.ptitle, vars.nseries = #panels, files, titles, ns
    if not fig.ymax then vars.pflat, vars.pylo, vars.pyhi = flat, flo, fhi end
    local cols = 1
    if #panels > 1 then
      cols = fig.cols or (#panels == 4 and 2 or math.min(#panels, 3))
      vars.cols = cols
      vars.w = fig.width or math.min(cols, 2) * 0.9
      vars.h = fig.height or math.ceil(#panels / cols) * 0.95
    end
    if not fig.logx then vars.xstep = x_steps(panels, fig, vars.w, cols) end
  else -- bars: categories (x) x series
    if #panels > 1 then fail(e._where, "experiment '%s': figure '%s': bars have no panels", e.name, fig.name) end
    local P = panels[1]
    local cats, cindex = {}, {}
    for _, S in ipairs(P.series) do
      for _, c in ipairs(S.xs) do
        local k = tostring(c.x)
        if not cindex[k] then cindex[k] = #cats + 1; cats[#cats + 1] = c.x end
      end
    end
    local out = {"category"}
    for _, S in ipairs(P.series) do out[#out + 1] = " " .. gp_str(S.title) .. ' ""' end
    out[#out + 1] = "\n"
    for _, x in ipairs(cats) do
      out[#out + 1] = gp_str(label_of(e, fig, type(fig.x) == "string" and fig.x, x))
      for _, S in ipairs(P.series) do
        local c = S.byx[type(x) == "number" and num(x) or tostring(x)]
        if c then
          local m, _, _, n, err = cell_stats(c, mode)
          if (n > 1 and mode ~= "none") or #c.errs > 0 then any_err = any_err or err > 0 end
          out[#out + 1] = (" %s %s"):format(num(m), num(err))
        else
          out[#out + 1] = " ? ?"
        end
      end
      out[#out + 1] = "\n"
    end
    hr.write_file(figdir .. "/" .. fig.name .. ".dat", table.concat(out))
    vars.datafile, vars.nseries = fig.name .. ".dat", #P.series
  end
  vars.errors = (any_err and mode ~= "none") and 1 or 0
  local keylen = 1
  for _, P in ipairs(panels) do
    for _, S in ipairs(P.series) do keylen = math.max(keylen, utf8.len(S.title) or #S.title) end
  end
  vars.keylen = keylen
  -- series named by bare values of a column ("4K", "never"): the key says which column
  if fig.keytitle then
    vars.keytitle = fig.keytitle -- "" for none
  elseif type(fig.series) == "string" and not fig.labels and not (e.labels and e.labels[fig.series]) then
    vars.keytitle = fig.series
  end
  local drawn = hr.plot{template = tpl, dir = figdir, name = fig.name, vars = vars, formats = opts.formats}
  local mixed, total, differ = figure_mixes(panels, keys)
  local warning
  if mixed then
    warning = ("figure '%s': %d of its %d point(s) average runs of different configurations "
      .. "(they differ in %s), so their means and error bars are not over repetitions: draw %s "
      .. "as series or panel, or select it with where"):format(fig.name, mixed, total,
      table.concat(differ, ", "), #differ == 1 and differ[1] or "them")
  end
  return drawn, warning
end

-- {==== provenance ====

local function tool_version(argv)
  local ok, res = hr.exec(argv, {stdout = true, stderr = true})
  if not ok then return nil end
  return ((res.stdout ~= "" and res.stdout or res.stderr or ""):match("[^\n]*"))
end

local function source_tree()
  local root = hr.build().source_root
  local ok, res = hr.exec({"git", "-C", root, "rev-parse", "HEAD"}, {stdout = true, stderr = true})
  if not ok then return nil end
  local head = res.stdout:match("%x+")
  local ok2, st = hr.exec({"git", "-C", root, "status", "--porcelain", "--untracked-files=no"},
    {stdout = true, stderr = true})
  return {path = root, head = head, dirty = ok2 and st.stdout:match("%S") ~= nil or nil}
end

-- {==== one experiment ====

local function run_experiment(e, opts)
  local t_start, date_start = hr.now(), hr.date()
  local dir = opts.out .. "/" .. e.name
  local dirs = {root = dir, runs = dir .. "/runs", work = dir .. "/work", traces = dir .. "/traces",
                cache = dir .. "/runs/cache", log = dir .. "/jobs.log"}
  local okm, merr = pcall(hr.mkdir, dir)
  if not okm then
    fail_status(3, e._where, "experiment '%s': cannot make its results folder: %s", e.name, bare(merr))
  end
  D.locked = D.locked or {}
  if not D.locked[dir] and not hr.lock(dir .. "/.lock") then
    fail_status(3, e._where, "experiment '%s': another 'heapreplay run' is writing %s", e.name, dir)
  end
  D.locked[dir] = true
  -- leftovers of a killed run (the lock says no other run writes here): staging folders, and
  -- the temporary files of atomic writes (TARGET.tmp.PID) in the folder and in the folders the
  -- driver writes records, recipes and trace facts into
  for _, f in ipairs(hr.list_dir(dir)) do
    if f:match("%.tmp%.%d+$") or f:match("^%.staging") or f:match("^%.figures%-old") then
      hr.remove_tree(dir .. "/" .. f)
    end
  end
  for _, sub in ipairs({dirs.runs, dirs.cache, dirs.traces}) do
    if hr.exists(sub) == "directory" then
      for _, f in ipairs(hr.list_dir(sub)) do
        if f:match("%.tmp%.%d+$") then os.remove(sub .. "/" .. f) end
      end
    end
  end
  -- The results folder's own I/O fails as "other failure" (3), located at the experiment.
  local function folder_io(f, ...)
    local ok, err = pcall(f, ...)
    if not ok then
      fail_status(3, e._where, "experiment '%s': cannot prepare its results folder: %s", e.name, bare(err))
    end
  end
  folder_io(hr.remove_tree, dirs.work)
  local reused_before = 0
  if not opts.resume then
    local n = 0
    for _, f in ipairs(hr.list_dir(dirs.runs)) do if f ~= "cache" then n = n + 1 end end
    if n > 0 then log(opts, "%s: starting afresh (%d earlier run file(s) discarded; --resume keeps them)", e.name, n) end
    folder_io(hr.remove_tree, dirs.runs)
  end
  for _, d in ipairs({dirs.runs, dirs.work, dirs.traces, dirs.cache}) do folder_io(hr.mkdir, d) end
  folder_io(function()
    local logf, lerr = io.open(dirs.log, "a")
    if not logf then error(("cannot append to the job log: %s"):format(lerr), 0) end
    local okw, werr = logf:write(("run %s pid %s resume %s\n"):format(hr.date(), tostring(hr.pid()),
      tostring(opts.resume and true or false)))
    local okc, cerr = logf:close()
    if not okw or not okc then error(("cannot append to the job log %s: %s"):format(dirs.log, werr or cerr), 0) end
  end)

  -- traces
  local traces = prepare_traces(e, dirs, opts)

  -- context for the experiment's functions
  local ctx = {name = e.name, dir = dir, params = opts.params or {}, traces = traces, data = {},
               tables = {}, labels = e.labels}
  -- ctx.replay(trace, cfg) -> result: one replay, cached (a resumed run does not redo it)
  -- ctx.try_replay(trace, cfg) -> result | nil, message: the same, a failure is a value
  local function cached(trace, cfg)
    local t = traces[trace]
    local path = t and t.path or trace
    local info = t and t.info or hr.info(trace)
    local parts = {"cache-v1", "trace=" .. info.crc32 .. ":" .. info.bytes}
    for _, k in ipairs(sorted_keys(cfg or {})) do parts[#parts + 1] = k .. "=" .. tostring(cfg[k]) end
    local key = hr.hash(table.concat(parts, ";"))
    local file = dirs.cache .. "/" .. key .. ".json"
    local rec = read_record(file, key)
    if rec then return rec end
    local ok, r = pcall(hr.replay, path, cfg)
    rec = {key = key, what = table.concat(parts, ";"), ok = ok}
    if ok then rec.result = r else rec.message = tostring(r) end
    hr.write_json(file, rec)
    return rec
  end
  function ctx.replay(trace, cfg)
    local rec = cached(trace, cfg)
    if not rec.ok then error(rec.message, 2) end
    return rec.result
  end
  function ctx.try_replay(trace, cfg)
    local rec = cached(trace, cfg)
    if not rec.ok then return nil, rec.message end
    return rec.result
  end
  if e.prepare then e.prepare(ctx) end

  -- points and jobs
  local points, keys = expand(e, ctx)
  if #points == 0 then fail(e._where, "experiment '%s': the grid (after filter) is empty", e.name) end
  local known_alloc, known_gc, checked = {}, {}, {alloc = {}, gc = {}}
  for _, n in ipairs(hr.allocators()) do known_alloc[n] = true end
  for _, n in ipairs(hr.collectors()) do known_gc[n] = true end
  local cmd = e.command or "replay"
  for _, p in ipairs(points) do
    if cmd == "replay" then
      if not known_alloc[spec_name(p.alloc)] then
        fail(e._where, "experiment '%s': allocator '%s' is not built in (heapreplay allocators: %s)",
          e.name, p.alloc, table.concat(hr.allocators(), ", "))
      end
      if not known_gc[spec_name(p.gc)] then
        fail(e._where, "experiment '%s': collector '%s' is not built in (%s)", e.name, p.gc,
          table.concat(hr.collectors(), ", "))
      end
      -- parameters and values too, before any job runs (a bad value used to fail its jobs only,
      -- status 3, after the others had run)
      for _, k in ipairs({"alloc", "gc"}) do
        if not checked[k][p[k]] then
          local okc, msg = hr.check_spec(k == "alloc" and "allocator" or "collector", p[k])
          if not okc then fail(e._where, "experiment '%s': %s", e.name, msg) end
          checked[k][p[k]] = true
        end
      end
    end
  end
  local reps = e.repetitions or 1
  local runs, jobs, pending = {}, {}, {}
  local reused = 0
  for _, p in ipairs(points) do
    local trace = traces[p.trace]
    for rep = 1, reps do
      local key, what = job_key(e, p, rep, trace)
      local run = {key = key, what = what, point = p, rep = rep, trace = trace,
                   record = dirs.runs .. "/" .. key .. ".json"}
      runs[#runs + 1] = run
      if not pending[key] then
        local rec = opts.resume and read_record(run.record, key)
        if rec then
          reused = reused + 1
          pending[key] = "done"
        else
          local json = dirs.work .. "/" .. key .. ".json"
          local csv = dirs.work .. "/" .. key .. ".timeline.csv"
          local argv = {hr.exe()}
          if cmd == "replay" then
            for _, a in ipairs(hr.replay_argv(trace.path, {alloc = p.alloc, gc = p.gc, check = e.check,
              timeline = p._every}, json, csv)) do argv[#argv + 1] = a end
          else
            for _, a in ipairs({"refcounts", trace.path, "--json", json}) do argv[#argv + 1] = a end
          end
          jobs[#jobs + 1] = {argv = argv, key = key, stderr = dirs.work .. "/" .. key .. ".err",
                             timeout = e.timeout, label = point_label(p, keys)}
          pending[key] = {run = run, json = json, csv = csv, argv = argv}
          pending[#pending + 1] = pending[key]
        end
      end
    end
  end
  -- hyperfine: one timing job per distinct configuration, run alone (exclusive)
  local hf_of = {}
  if e.hyperfine then
    local seen = {}
    for _, run in ipairs(runs) do
      local p = run.point
      local hkey = hr.hash(table.concat({"hf-v1", run.trace.info.crc32 .. ":" .. run.trace.info.bytes,
        p.alloc, p.gc, e.hyperfine.warmup or 1, e.hyperfine.runs or 5}, ";"))
      hf_of[run] = hkey
      if not seen[hkey] then
        seen[hkey] = true
        local file = dirs.runs .. "/" .. hkey .. ".hyperfine.json"
        if opts.resume and read_record(file, hkey) then
          reused = reused + 1
        else
          local export = dirs.work .. "/" .. hkey .. ".hf.json"
          local replay = {hr.exe(), "replay", run.trace.path, "--alloc", p.alloc, "--gc", p.gc, "-q"}
          local name = point_label(p, keys)
          jobs[#jobs + 1] = {argv = hr.hyperfine_argv({replay}, {warmup = e.hyperfine.warmup or 1,
            runs = e.hyperfine.runs or 5, names = {name}}, export), key = hkey, exclusive = true,
            stderr = dirs.work .. "/" .. hkey .. ".err", timeout = e.timeout and e.timeout * ((e.hyperfine.runs or 5) + 2)}
          local entry = {hf = true, key = hkey, export = export, file = file, point = p, name = name,
                         command = hr.shell_quote(replay)}
          pending[hkey] = entry
          pending[#pending + 1] = entry
        end
      end
    end
  end
  if e.shuffle then -- randomised order (fixed seed), timing jobs stay last
    local rng = 12345
    local n = 0
    for _, j in ipairs(jobs) do if not j.exclusive then n = n + 1 end end
    for i = n, 2, -1 do
      rng = (rng * 1103515245 + 12345) % 2147483648
      local k = rng % i + 1
      jobs[i], jobs[k] = jobs[k], jobs[i]
      pending[i], pending[k] = pending[k], pending[i]
    end
  end
  -- grid points with the same specs share their jobs: count the jobs themselves
  local distinct, seenk = 0, {}
  for _, run in ipairs(runs) do
    if not seenk[run.key] then seenk[run.key] = true; distinct = distinct + 1 end
    local hk = hf_of[run]
    if hk and not seenk[hk] then seenk[hk] = true; distinct = distinct + 1 end
  end
  log(opts, "%s: %d run(s) of %d grid point(s), %d distinct job(s): %d to do, %d finished earlier",
    e.name, #runs, #points, distinct, #jobs, reused)
  local warnings = {}
  local function warn(msg) -- also under --quiet: it is not progress
    warnings[#warnings + 1] = msg
    io.stderr:write(("heapreplay run: %s: experiment '%s': warning: %s\n"):format(e._where, e.name, msg))
  end
  for _, k in ipairs(idle_parameters(e, keys, runs)) do
    local vals = {}
    for i, v in ipairs(e.grid[k]) do vals[i] = fmt_value(v) end
    warn(("grid parameter '%s' changes no run: its values (%s) give the same allocator, collector "
      .. "and timeline wherever the other parameters are held (does the alloc or gc function read "
      .. "p.%s?), so its rows repeat the same replays"):format(k, table.concat(vals, ", "), k))
  end

  local failures = {}
  if #jobs > 0 then
    local res = hr.sweep(jobs, {jobs = opts.jobs, log = dirs.log, keep_going = e.keep_going,
      label = e.name, on_done = function(i, r)
        local pj = pending[i]
        if pj.hf then
          local hf = hr.read_json(pj.export)
          hr.write_json(pj.file, {schema = "heapreplay-hyperfine/1", key = pj.key, point = pj.point,
            command = pj.command, hyperfine = hf.results[1]})
          os.remove(pj.export)
        else
          local run = pj.run
          local rec = {schema = "heapreplay-run/1", key = run.key, what = run.what,
            experiment = e.name, command = cmd, point = run.point, rep = run.rep,
            trace = {name = run.trace.name, path = run.trace.path, crc32 = run.trace.info.crc32},
            argv = pj.argv, process = {wall = r.wall, user = r.user, sys = r.sys, maxrss = r.maxrss},
            result = hr.read_json(pj.json)}
          if run.point._every and cmd == "replay" then
            rec.timeline = run.key .. ".timeline.csv"
            assert(os.rename(pj.csv, dirs.runs .. "/" .. rec.timeline))
          end
          hr.write_json(run.record, rec) -- the commit point of this job
          os.remove(pj.json)
        end
        os.remove(dirs.work .. "/" .. (pj.key or pj.run.key) .. ".err")
      end})
    if res.interrupted then
      fail(nil, "%s: interrupted by signal %d: %d job(s) finished and kept; run again with --resume",
        e.name, res.interrupted, res.done)
    end
    for i, r in ipairs(res) do
      if r.status ~= "ok" and r.status ~= "not run" then
        failures[#failures + 1] = {job = jobs[i], result = r}
      end
    end
    if #failures > 0 and not e.keep_going then
      local msgs = {}
      for i = 1, math.min(#failures, 5) do
        local f = failures[i]
        msgs[#msgs + 1] = ("  %s (%s): %s"):format(f.job.label or f.job.key, f.result.status,
          (f.result.stderr or ""):gsub("\n", "\n    "))
      end
      fail_status(3, e._where, "experiment '%s': %d job(s) failed; the %d finished ones are kept (--resume "
        .. "continues):\n%s", e.name, #failures, res.done, table.concat(msgs, "\n"))
    end
  end

  -- rows
  local rows, trows, records = {}, {}, {}
  local metric_cols, mseen = {}, {}
  local failed_keys = {}
  for _, f in ipairs(failures) do failed_keys[f.job.key] = true end
  for _, run in ipairs(runs) do
    local rec = read_record(run.record, run.key)
    if rec then
      local row = {experiment = e.name, run = run.key, rep = run.rep}
      for k, v in pairs(run.point) do if k:sub(1, 1) ~= "_" then row[k] = v end end
      local m = flatten_result(rec)
      if hf_of[run] then
        local hf = read_record(dirs.runs .. "/" .. hf_of[run] .. ".hyperfine.json", hf_of[run])
        if hf then hf_metrics(hf, m) end
      end
      for k, v in pairs(m) do row[k] = v end
      row._point = run.point
      point_of[row] = run.point
      rows[#rows + 1] = row
      records[#records + 1] = rec
      if rec.timeline then
        local tl = hr.read_csv(dirs.runs .. "/" .. rec.timeline)
        for _, s in ipairs(tl) do
          local t = {experiment = e.name, run = run.key, rep = run.rep}
          for k, v in pairs(run.point) do if k:sub(1, 1) ~= "_" then t[k] = v end end
          for k, v in pairs(s) do t[k] = v end
          point_of[t] = run.point
          trows[#trows + 1] = t
        end
      end
    elseif not e.keep_going then
      fail(e._where, "experiment '%s': internal error: run %s has no record", e.name, run.key)
    end
  end
  -- derived columns: derive(row, ctx) sees every row (ctx.rows), e.g. to subtract a baseline
  ctx.rows, ctx.records = rows, records
  for _, row in ipairs(rows) do
    if e.derive then e.derive(row, ctx) end
    for _, k in ipairs(sorted_keys(row)) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and row._point[k] == nil and k ~= "experiment"
          and k ~= "run" and k ~= "rep" and not mseen[k] then
        mseen[k] = true
        metric_cols[#metric_cols + 1] = k
      end
    end
  end
  for _, row in ipairs(rows) do row._point = nil end
  local id_cols = {"experiment", "run"}
  for _, k in ipairs(keys) do id_cols[#id_cols + 1] = k end
  local function has(k) for _, c in ipairs(id_cols) do if c == k then return true end end end
  if not has("trace") then table.insert(id_cols, 3, "trace") end
  if cmd == "replay" then
    if not has("alloc") then id_cols[#id_cols + 1] = "alloc" end
    if not has("gc") then id_cols[#id_cols + 1] = "gc" end
  end
  id_cols[#id_cols + 1] = "rep"
  local cols = {}
  for _, c in ipairs(id_cols) do cols[#cols + 1] = c end
  if e.metrics then
    for _, m in ipairs(e.metrics) do
      if not mseen[m] then
        table.sort(metric_cols)
        -- the jobs are done and their records kept: say how to go on without replaying
        fail(e._where, "experiment '%s': metric '%s' is not produced%s\n(no results written; the "
          .. "%d run(s) are kept in %s/runs: fix `metrics` and run again with --resume to finish "
          .. "without replaying)\nthe metrics there are: %s", e.name, tostring(m),
          did_you_mean(m, metric_cols), #rows, dir, table.concat(metric_cols, ", "))
      end
      cols[#cols + 1] = m
    end
  else
    for _, m in ipairs(metric_cols) do cols[#cols + 1] = m end
  end
  ctx.rows, ctx.timeline = rows, trows
  if e.finish then e.finish(ctx) end

  -- outputs, staged
  local staging = dir .. "/.staging." .. tostring(hr.pid())
  hr.remove_tree(staging)
  hr.mkdir(staging .. "/figures")
  local ok, err = pcall(function()
    hr.write_csv(staging .. "/results.csv", rows, cols)
    local files = {"results.csv"}
    if #trows > 0 then
      local tcols = {}
      for _, c in ipairs(id_cols) do tcols[#tcols + 1] = c end
      for _, c in ipairs({"event", "live_objects", "live_blocks", "live_bytes", "footprint", "rss", "gc_ns"}) do
        tcols[#tcols + 1] = c
      end
      hr.write_csv(staging .. "/timeline.csv", trows, tcols)
      files[#files + 1] = "timeline.csv"
    end
    for _, tname in ipairs(sorted_keys(ctx.tables)) do
      local t = ctx.tables[tname]
      if type(t) ~= "table" or type(t.rows) ~= "table" or type(t.columns) ~= "table" then
        fail(e._where, "experiment '%s': ctx.tables.%s must be {rows = {...}, columns = {...}}", e.name, tname)
      end
      hr.write_csv(staging .. "/" .. tname .. ".csv", t.rows, t.columns)
      files[#files + 1] = tname .. ".csv"
    end
    local figfiles = {}
    for _, fig in ipairs(e.figures or {}) do
      local data = rows
      if fig.data == "timeline" then data = trows
      elseif type(fig.data) == "table" then data = fig.data
      elseif type(fig.data) == "string" and fig.data ~= "runs" then
        local t = ctx.tables[fig.data]
        if not t then
          fail(e._where, "experiment '%s': figure '%s': no data '%s' (runs, timeline, or a table "
            .. "from finish: %s)", e.name, fig.name, fig.data, table.concat(sorted_keys(ctx.tables), ", "))
        end
        data = t.rows
      end
      local okf, drawn, fwarn = pcall(draw_figure, e, fig, data, staging .. "/figures", opts, keys)
      if not okf then
        local msg = bare(drawn)
        if not msg:find(e._where, 1, true) then
          msg = ("%s: experiment '%s': figure '%s': %s"):format(e._where, e.name, fig.name, msg)
        end
        -- the runs are done and kept: say how to draw them without replaying again
        error(("%s\n(no results written; the %d run(s) are kept in %s/runs: fix the figure and "
          .. "run again with --resume to draw without replaying)"):format(msg, #rows, dir), 0)
      end
      for _, f in ipairs(drawn) do
        figfiles[#figfiles + 1] = "figures/" .. hr.basename(f)
      end
      if fwarn then warn(fwarn) end
    end
    local script_text = hr.read_file(e._script)
    hr.write_file(staging .. "/experiment.lua", script_text)
    local tinfo = {}
    for name, t in pairs(traces) do
      tinfo[name] = {path = t.path, recipe = t.recipe, crc32 = t.info.crc32, bytes = t.info.bytes,
        events = t.info.events, kind = t.info.kind, meta = t.info.meta}
    end
    local b = hr.build()
    local failed = {}
    for _, f in ipairs(failures) do failed[#failed + 1] = {job = f.job.label or f.job.key,
      status = f.result.status, stderr = f.result.stderr} end
    hr.write_json(staging .. "/provenance.json", {
      schema = "heapreplay-provenance/1",
      experiment = e.name, title = e.title, description = e.description,
      script = e._script, script_crc32 = (hr.checksum(e._script)), script_text = script_text,
      command_line = opts.command_line, params = opts.params, jobs = opts.jobs or hr.machine().cores,
      resumed = opts.resume and true or false,
      heapreplay = {version = b.version, build_commit = b.commit, compiler = b.compiler, lua = b.lua,
                    binary = hr.exe()},
      source_tree = source_tree(),
      tools = {gnuplot = tool_version({"gnuplot", "--version"}),
               hyperfine = e.hyperfine and tool_version({"hyperfine", "--version"}) or nil},
      machine = hr.machine(), date_start = date_start, date_end = hr.date(),
      wall_s = hr.now() - t_start,
      traces = tinfo,
      warnings = #warnings > 0 and warnings or nil,
      runs = {total = #runs, configurations = #points, repetitions = reps, rows = #rows,
              executed_now = #jobs - #failures, finished_earlier = reused, failed = failed},
      files = (function() for _, f in ipairs(figfiles) do files[#files + 1] = f end return files end)(),
    })
    for _, f in ipairs({"provenance.json", "experiment.lua"}) do files[#files + 1] = f end
    return files
  end)
  if not ok then
    hr.remove_tree(staging)
    error(err, 0)
  end
  -- commit: move every staged file into place (each rename is atomic); figures/ and the CSV
  -- tables are replaced as a whole, so that nothing from an earlier version of the script stays
  local produced = {}
  for _, f in ipairs(hr.list_dir(staging)) do produced[f] = true end
  for _, f in ipairs(hr.list_dir(dir)) do
    if f:match("%.csv$") and not produced[f] then os.remove(dir .. "/" .. f) end
  end
  local old = dir .. "/.figures-old." .. tostring(hr.pid())
  if hr.exists(dir .. "/figures") then assert(os.rename(dir .. "/figures", old)) end
  assert(os.rename(staging .. "/figures", dir .. "/figures"))
  hr.remove_tree(old)
  for _, f in ipairs(hr.list_dir(staging)) do
    assert(os.rename(staging .. "/" .. f, dir .. "/" .. f))
  end
  hr.remove_tree(staging)
  hr.remove_tree(dirs.work)
  log(opts, "%s: %d rows -> %s/results.csv, %d figure(s) in %s/figures (%.1f s)", e.name, #rows,
    dir, #(e.figures or {}), dir, hr.now() - t_start)
  if #failures > 0 then
    fail_status(3, e._where, "experiment '%s': %d job(s) failed (listed in provenance.json); results "
      .. "hold the others", e.name, #failures)
  end
  return {dir = dir, rows = rows, timeline = trows, ctx = ctx}
end

-- {==== entry points ====

-- params as the scripts see them: a proxy that notes every name read (params.NAME, param(NAME),
-- pairs). unread() lists, sorted, the names given that no script read; read() those read.
local function track_params(t)
  local seen = {}
  local proxy = setmetatable({}, {
    __index = function(_, k) seen[k] = true; return t[k] end,
    __newindex = function(_, k, v) t[k] = v end,
    __pairs = function() for k in pairs(t) do seen[k] = true end; return next, t, nil end})
  local function list(want_seen)
    local u = {}
    for k in pairs(want_seen and seen or t) do
      if type(k) == "string" and (want_seen or not seen[k]) then u[#u + 1] = k end
    end
    table.sort(u)
    return u
  end
  return proxy, function() return list(false) end, function() return list(true) end
end

-- Load a script and, recursively, the suites it declares: every experiment in order, each
-- name once (seen: name -> where it was declared).
local function load_file(script, opts, seen, list)
  if hr.exists(script) ~= "file" then error(("no experiment script '%s'"):format(script), 0) end
  local decls = {}
  local env = make_env(script, opts, decls)
  local chunk, err = loadfile(script, "t", env)
  if not chunk then error(err, 0) end
  chunk()
  for _, d in ipairs(decls) do
    if d.kind == "experiment" then
      local first = seen[d.e.name]
      if first then declared_twice(d.e._where, d.e.name, first) end
      seen[d.e.name] = d.e._where
      list[#list + 1] = d.e
    else
      load_file(d.path, opts, seen, list)
    end
  end
end

-- Run an experiment script: load it and its suites (declarations only), then run what they
-- declared. A key=value parameter that no script read while loading (a misspelt name: sise=full
-- ran the default size without a word) is refused before anything runs.
-- opts: out (results root), jobs, resume, params, quiet, formats, command_line.
function D.run_file(script, opts)
  local proxy, unread, read = track_params(opts.params or {})
  local lopts = setmetatable({params = proxy}, {__index = opts})
  local list = {}
  load_file(script, lopts, {}, list)
  local u = unread()
  if #u > 0 then
    local r = read()
    error(("%s: parameter%s %s %s read by no script%s (those read: %s); scripts read their "
      .. "parameters with param(name, default) or params.name when they are loaded"):format(script,
      #u > 1 and "s" or "", "'" .. table.concat(u, "', '") .. "'", #u > 1 and "are" or "is",
      #u == 1 and did_you_mean(u[1], r) or "", #r > 0 and table.concat(r, ", ") or "none"), 0)
  end
  local results = {}
  for _, e in ipairs(list) do results[#results + 1] = run_experiment(e, opts) end
  return results
end

local run_opts = {out = "string", jobs = "integer", resume = "boolean", params = "table",
                  quiet = "boolean", formats = "table"}

-- hr.run(script_or_table, opts) -> array of {dir, rows, timeline, ctx}
-- Runs an experiment script (a path), or an experiment given as a table, like `heapreplay run`.
function hr.run(what, opts)
  opts = hr._options("hr.run", 2, opts, run_opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.out = o.out or "results"
  if type(what) == "string" then
    return D.run_file(what, o)
  elseif type(what) == "table" then
    local info = debug.getinfo(2, "Sl")
    local where = info.short_src .. ":" .. (info.currentline or 0)
    check_experiment(what, where)
    what._where, what._script = where, info.source:sub(1, 1) == "@" and info.source:sub(2) or nil
    what._dir = what._script and hr.dirname(what._script) or "."
    for _, t in pairs(what.traces) do
      if t.kind == nil then hr._argerror("hr.run", 1, "traces must come from hr.trace_gen/record/file") end
    end
    if not what._script then hr._argerror("hr.run", 1, "experiment tables can be run from script files only") end
    return {run_experiment(what, o)}
  end
  hr._argerror("hr.run", 1, "experiment script path or table expected, got " .. type(what))
end

-- Trace declarations for hr.run with a table (the same as gen/record/file in scripts).
function hr.trace_gen(name, params) return {kind = "gen", name = name, params = params or {}} end
function hr.trace_record(script, o)
  o = o or {}
  return {kind = "record", script = script, mode = o.mode or "alloc", args = o.args or {}}
end
function hr.trace_file(path) return {kind = "file", path = path} end

return D
