-- hr.lua: the high-level Lua API of heapreplay, written in Lua on top of the C functions of
-- hr_lua_sys.c and hr_lua_api.c (embedded into the binary; docs/lua-api.md documents it).
--
-- Every measured replay runs in a child process (`heapreplay replay ... --json`), never in the
-- interpreter's own process: the interpreter does not share a process, an address space or a
-- malloc with the allocator being measured, and RSS and CPU time are the child's alone.
--
-- Argument errors name the function, the argument and the option:
--   bad argument #2 to 'hr.replay' (unknown option 'allco' (did you mean 'alloc'?); known: alloc, check, gc, ...)
-- and point at the caller's line.
local hr = ...

-- {==== argument checking ====

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  return ks
end

-- A misspelt name's likely intent: " (did you mean 'x'?)" or "" (hr_did_you_mean, in C).
local did_you_mean = hr._did_you_mean

-- Raise "bad argument #n to 'fname' (msg)" at the caller of the API function (level 3 from
-- here: check helper -> API function -> caller).
local function argerror(fname, n, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 1) + 2)
end
hr._argerror = argerror

-- Check a value's type; `want` may list alternatives: "string|number".
local function check(fname, n, v, want, what)
  local t = type(v)
  for w in want:gmatch("[^|]+") do
    if t == w or (w == "integer" and math.type(v) == "integer") then return v end
  end
  argerror(fname, n, ("%s expected, got %s"):format(what and (what .. " as " .. want) or want,
    v == nil and "no value" or t), 2)
end

-- "string|table" -> "a string or a table", "integer" -> "an integer" (for messages)
local function kinds(want)
  return (want:gsub("[^|]+", function(w) return (w:match("^[aeiou]") and "an " or "a ") .. w end)
    :gsub("|", " or "))
end

-- Check an options table against {name = "type", ...}; returns it ({} when nil).
local function options(fname, n, opts, spec)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    argerror(fname, n, "options table expected, got " .. type(opts), 2)
  end
  for k, v in pairs(opts) do
    local want = spec[k]
    if not want then
      argerror(fname, n, ("unknown option '%s'%s; known: %s"):format(tostring(k),
        did_you_mean(k, sorted_keys(spec)), table.concat(sorted_keys(spec), ", ")), 2)
    end
    local ok = false
    for w in want:gmatch("[^|]+") do
      if type(v) == w or (w == "integer" and math.type(v) == "integer") then ok = true end
    end
    if not ok then
      argerror(fname, n, ("option '%s' must be %s, not %s"):format(k, kinds(want), type(v)), 2)
    end
  end
  return opts
end
hr._check, hr._options, hr._kinds = check, options, kinds

-- {==== small helpers ====

local function basename(p) return (p:gsub("/+$", ""):match("[^/]*$")) end
local function dirname(p)
  local d = p:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  return d == "" and "/" or d
end
hr.basename, hr.dirname = basename, dirname

local tmp_counter = 0
-- A fresh temporary path in the system's temporary directory (not created).
local function tmpname(suffix)
  tmp_counter = tmp_counter + 1
  local base = os.getenv("TMPDIR") or "/tmp"
  return ("%s/hr_lua.%d.%d.%d%s"):format(base, math.floor(hr.now() * 1000) % 1000000,
    tmp_counter, math.random(1, 1 << 30), suffix or "")
end
hr.tmpname = tmpname

-- One line of text for a command, quoted for a POSIX shell where needed.
function hr.shell_quote(argv)
  local out = {}
  for i, a in ipairs(argv) do
    a = tostring(a)
    if a:match("^[%w%-%._/=:,+%%@]+$") then out[i] = a
    else out[i] = "'" .. a:gsub("'", "'\\''") .. "'" end
  end
  return table.concat(out, " ")
end

-- Run a heapreplay subcommand in a child; raise with its error output on failure.
local function run_hr(fname, argv, level)
  local full = {hr.exe()}
  for _, a in ipairs(argv) do full[#full + 1] = a end
  local ok, res = hr.exec(full)
  if not ok then
    local msg = res.stderr and res.stderr ~= "" and res.stderr
      or (res.signal and ("killed by signal " .. res.signal)) or ("exit status " .. tostring(res.exit))
    error(("%s: %s"):format(fname, msg:gsub("^heapreplay[^:]*: ", "")), (level or 1) + 1)
  end
  return res
end

-- {==== traces ====

-- hr.gen(name, params, out) -> out: write a trace from a generator (built in or a Lua workload).
-- params is a table of key = value (numbers or strings such as "10M").
function hr.gen(name, params, out)
  check("hr.gen", 1, name, "string")
  params = check("hr.gen", 2, params == nil and {} or params, "table")
  check("hr.gen", 3, out, "string")
  local argv = {"gen", name}
  for k in pairs(params) do
    if type(k) ~= "string" then
      argerror("hr.gen", 2, ("parameter names are strings, not %s %s"):format(type(k), tostring(k)))
    end
  end
  for _, k in ipairs(sorted_keys(params)) do
    local v = params[k]
    if type(v) ~= "string" and type(v) ~= "number" then
      argerror("hr.gen", 2, ("parameter '%s' must be a string or a number, not %s"):format(k,
        type(v)))
    end
    argv[#argv + 1] = k .. "=" .. tostring(v)
  end
  argv[#argv + 1] = "-o"
  argv[#argv + 1] = out
  run_hr("hr.gen", argv, 2)
  return out
end

local record_opts = {mode = "string", args = "table", out = "string"}

-- hr.record(script, {out = PATH, mode = "alloc"|"graph", args = {...}}) -> out
-- Records a Python script on the embedded CPython 3.11 (heapreplay record).
function hr.record(script, opts)
  check("hr.record", 1, script, "string")
  opts = options("hr.record", 2, opts, record_opts)
  if not opts.out then argerror("hr.record", 2, "option 'out' (the trace to write) is required") end
  if opts.mode and opts.mode ~= "alloc" and opts.mode ~= "graph" then
    argerror("hr.record", 2, "option 'mode' must be \"alloc\" or \"graph\"")
  end
  local argv = {"record", "-o", opts.out, "--mode", opts.mode or "alloc", "--", script}
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = tostring(a) end
  run_hr("hr.record", argv, 2)
  return opts.out
end

-- {==== replay ====

local replay_opts = {alloc = "string", gc = "string", check = "boolean", timeline = "integer",
                     partial = "boolean", no_touch = "boolean", json = "string"}

-- The argv (without the binary) of one replay: shared by hr.replay and the experiment driver.
function hr.replay_argv(trace, opts, json, timeline_csv)
  local argv = {"replay", trace, "--json", json, "-q"}
  if opts.alloc then argv[#argv + 1] = "--alloc"; argv[#argv + 1] = opts.alloc end
  if opts.gc then argv[#argv + 1] = "--gc"; argv[#argv + 1] = opts.gc end
  if opts.check then argv[#argv + 1] = "--check" end
  if opts.partial then argv[#argv + 1] = "--partial" end
  if opts.no_touch then argv[#argv + 1] = "--no-touch" end
  if opts.timeline then
    argv[#argv + 1] = "--timeline"; argv[#argv + 1] = timeline_csv
    argv[#argv + 1] = "--every"; argv[#argv + 1] = tostring(opts.timeline)
  end
  return argv
end

-- hr.replay(trace, {alloc = SPEC, gc = SPEC, check = bool, timeline = N, partial = bool,
--                   no_touch = bool, json = PATH}) -> result
-- Replays one configuration in a child process and returns its JSON (schema heapreplay-replay/1)
-- as a table: result.replay, result.allocator, result.collector, result.provenance, plus
-- result.process = {wall, user, sys (s), maxrss (bytes)} of the child and, with timeline = N,
-- result.timeline = array of samples every N events.
function hr.replay(trace, opts)
  check("hr.replay", 1, trace, "string")
  opts = options("hr.replay", 2, opts, replay_opts)
  if opts.timeline and opts.timeline <= 0 then
    argerror("hr.replay", 2, "option 'timeline' must be a positive number of events")
  end
  if not hr.exists(trace) then argerror("hr.replay", 1, ("no trace '%s'"):format(trace)) end
  local json = opts.json or tmpname(".json")
  local csv = opts.timeline and tmpname(".csv") or nil
  local full = {hr.exe()}
  for _, a in ipairs(hr.replay_argv(trace, opts, json, csv)) do full[#full + 1] = a end
  local ok, res = hr.exec(full)
  if not ok then
    if csv then os.remove(csv) end
    if not opts.json then os.remove(json) end
    local msg = res.stderr ~= nil and res.stderr ~= "" and res.stderr or
      (res.signal and ("killed by signal " .. res.signal) or ("exit status " .. tostring(res.exit)))
    error("hr.replay: " .. msg:gsub("^heapreplay[^:]*: ", ""), 2)
  end
  local r = hr.read_json(json)
  if not opts.json then os.remove(json) end
  r.process = {wall = res.wall, user = res.user, sys = res.sys, maxrss = res.maxrss}
  if csv then
    r.timeline = hr.read_csv(csv)
    os.remove(csv)
  end
  return r
end

-- hr.metrics(result) -> flat table of every scalar metric of a replay result (the columns of an
-- experiment's CSV): the replay, allocator and collector sections, and proc_* for the process.
function hr.metrics(r)
  check("hr.metrics", 1, r, "table")
  local m = {}
  for _, section in ipairs({"replay", "allocator", "collector"}) do
    for k, v in pairs(r[section] or {}) do
      if type(v) == "number" or type(v) == "boolean" then
        if m[k] ~= nil then k = section .. "_" .. k end
        m[k] = v
      end
    end
  end
  if r.process then
    m.proc_wall_s, m.proc_user_s, m.proc_sys_s = r.process.wall, r.process.user, r.process.sys
    m.proc_maxrss = r.process.maxrss
  end
  return m
end

-- {==== hyperfine ====

local hf_opts = {warmup = "integer", runs = "integer", export = "string", names = "table",
                 setup = "string"}

-- The argv of a hyperfine run over commands (each an argv array): shared with the driver.
function hr.hyperfine_argv(commands, opts, export)
  local argv = {"hyperfine", "-N", "--style", "none", "--export-json", export,
                "--warmup", tostring(opts.warmup or 1), "--runs", tostring(opts.runs or 5)}
  if opts.setup then argv[#argv + 1] = "--setup"; argv[#argv + 1] = opts.setup end
  for i, c in ipairs(commands) do
    if opts.names and opts.names[i] then
      argv[#argv + 1] = "--command-name"; argv[#argv + 1] = opts.names[i]
    end
    argv[#argv + 1] = type(c) == "table" and hr.shell_quote(c) or c
  end
  return argv
end

-- hr.hyperfine(commands, {warmup = 1, runs = 5, export = PATH, names = {...}}) -> results
-- Times whole commands with hyperfine (wall clock, warm-up, repetitions). commands: an array of
-- argv arrays (or command strings). Returns hyperfine's JSON export: results[i] has mean,
-- stddev, median, min, max, user, system (seconds), times[] and exit_codes[].
function hr.hyperfine(commands, opts)
  check("hr.hyperfine", 1, commands, "table")
  opts = options("hr.hyperfine", 2, opts, hf_opts)
  if #commands == 0 then argerror("hr.hyperfine", 1, "no commands") end
  for i, c in ipairs(commands) do
    if type(c) ~= "table" and type(c) ~= "string" then
      argerror("hr.hyperfine", 1, ("commands[%d] must be an argv array or a string"):format(i))
    end
  end
  if (opts.runs or 5) < 2 then argerror("hr.hyperfine", 2, "option 'runs' must be at least 2") end
  local export = opts.export or tmpname(".json")
  local ok, res = hr.exec(hr.hyperfine_argv(commands, opts, export))
  if not ok then
    error("hr.hyperfine: " .. (res.stderr or res.error or "failed"), 2)
  end
  local r = hr.read_json(export)
  if not opts.export then os.remove(export) end
  return r.results
end

-- {==== figures ====

-- Where the gnuplot templates are: $HR_PLOT_DIR, the source tree of this binary, ./scripts/plot.
function hr.plot_dir()
  local env = os.getenv("HR_PLOT_DIR")
  if env and env ~= "" then return (env:gsub("/*$", "/")) end
  local src = hr.build().source_root .. "/scripts/plot/"
  if hr.exists(src .. "lines.gp") then return src end
  return "scripts/plot/"
end

-- A gnuplot value: numbers as they are, strings single-quoted, arrays as gnuplot arrays.
local function gp_value(v)
  if type(v) == "number" then return tostring(v) end
  if type(v) == "boolean" then return v and "1" or "0" end
  return "'" .. tostring(v):gsub("'", "''") .. "'"
end

-- The text of a .vars.gp file setting each variable (arrays become gnuplot arrays).
function hr.gnuplot_vars(vars)
  local lines = {"# variables of a heapreplay figure (see the template's header)"}
  for _, k in ipairs(sorted_keys(vars)) do
    local v = vars[k]
    if type(v) == "table" then
      local items = {}
      for i, x in ipairs(v) do items[i] = gp_value(x) end
      lines[#lines + 1] = ("array %s[%d] = [%s]"):format(k, #v, table.concat(items, ", "))
    else
      lines[#lines + 1] = ("%s = %s"):format(k, gp_value(v))
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

local plot_opts = {template = "string", vars = "table", dir = "string", name = "string",
                   formats = "table"}

-- hr.plot{template = "lines"|"bars"|PATH, dir = DIR, name = NAME, vars = {...},
--         formats = {"png", "pdf", "svg"}} -> array of files written
-- Writes DIR/NAME.gp (the variables, then `load` of the template: run it again by hand with
-- cd DIR && gnuplot -e "fmt='pdf'" NAME.gp) and draws DIR/NAME.png, .pdf and .svg with
-- gnuplot, each written atomically. Data files named in vars are relative to DIR.
function hr.plot(spec)
  check("hr.plot", 1, spec, "table")
  options("hr.plot", 1, spec, plot_opts)
  if not spec.template then argerror("hr.plot", 1, "field 'template' is required") end
  if not spec.dir then argerror("hr.plot", 1, "field 'dir' (where the figure goes) is required") end
  if not spec.name or not spec.name:match("^[%w%-_%.]+$") then
    argerror("hr.plot", 1, "field 'name' (letters, digits, '-', '_', '.') is required")
  end
  local tpl = spec.template
  if not tpl:find("/") then tpl = hr.plot_dir() .. tpl .. ".gp" end
  if hr.exists(tpl) ~= "file" then argerror("hr.plot", 1, ("no gnuplot template '%s'"):format(tpl)) end
  if tpl:sub(1, 1) ~= "/" then
    local ok, res = hr.exec({"realpath", tpl}, {stdout = true})
    if ok then tpl = res.stdout:match("[^\n]+") end
  end
  local vars = {}
  for k, v in pairs(spec.vars or {}) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
      argerror("hr.plot", 1, ("variable name '%s' is not a gnuplot identifier"):format(tostring(k)))
    end
    if k == "fmt" or k == "out" then
      argerror("hr.plot", 1, ("variable '%s' is set by hr.plot itself"):format(k))
    end
    vars[k] = v
  end
  -- the template (and the style.gp beside it, which the bundled ones load) is copied next to
  -- the figure, and NAME.gp loads the copy: the figure's folder redraws wherever it is moved
  local tdir, tname = hr.dirname(tpl), tpl:match("[^/]+$")
  for _, f in ipairs({tname, "style.gp"}) do
    local src = tdir .. "/" .. f
    if hr.exists(src) == "file" then
      hr.write_file(spec.dir .. "/" .. f, hr.read_file(src))
    end
  end
  vars.dir = ""
  local name = spec.name
  local text = hr.gnuplot_vars(vars) ..
    "if (!exists(\"fmt\")) fmt = 'png'\n" ..
    ("if (!exists(\"out\")) out = '%s.'.fmt\n"):format(name) ..
    ("load '%s'\n"):format(tname:gsub("'", "''"))
  hr.write_file(spec.dir .. "/" .. name .. ".gp", text)
  local written, warned = {}, {}
  for _, fmt in ipairs(spec.formats or {"png", "pdf", "svg"}) do
    if fmt ~= "png" and fmt ~= "pdf" and fmt ~= "svg" then
      argerror("hr.plot", 1, ("format '%s' is not png, pdf or svg"):format(tostring(fmt)))
    end
    local final = name .. "." .. fmt
    local tmp = ("%s.tmp.%d.%s"):format(name, hr.pid(), fmt)
    local ok, res = hr.exec({"gnuplot", "-e", ("fmt='%s'; out='%s'"):format(fmt, tmp), name .. ".gp"},
                            {stderr = true, cwd = spec.dir})
    local err = res.stderr or ""
    local tmp_path = spec.dir .. "/" .. tmp
    if not ok or err:match("error") or hr.exists(tmp_path) ~= "file" then
      os.remove(tmp_path)
      error(("hr.plot: gnuplot failed on %s/%s: %s"):format(spec.dir, final, err ~= "" and err or
        ("exit " .. tostring(res.exit or res.error))), 2)
    end
    -- warnings (e.g. points outside a log axis, a panel whose values are all zero): reported
    -- once per figure (every format draws the same data), figure kept
    local w = err:gsub(tmp:gsub("%p", "%%%0"), name .. ".FMT"):gsub("%s+$", "")
    if w:match("%S") and not warned[w] then
      warned[w] = true
      io.stderr:write(("heapreplay: gnuplot, %s/%s: %s\n"):format(spec.dir, name, w))
    end
    assert(os.rename(tmp_path, spec.dir .. "/" .. final))
    written[#written + 1] = spec.dir .. "/" .. final
  end
  return written
end

return hr
