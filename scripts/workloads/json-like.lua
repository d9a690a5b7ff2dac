-- json-like.lua: a workload shaped like parsing JSON documents into dicts and dropping them:
-- dicts with shared (interned) string keys and nested values; each dict owns a keys table (a
-- plain mem block freed when the document goes, as dict_dealloc does).
-- Parameters: docs=N (default 2000), width=N keys per dict (default 8), depth=N (default 3).
kind = "graph"

function generate(w, params)
  local docs = hr.num(params.docs, 2000)
  local width = hr.num(params.width, 8)
  local depth = hr.num(params.depth, 3)
  local t_dict, t_str, t_int = w:type("dict"), w:type("str"), w:type("int")
  local keys = {}                                   -- interned keys live for the whole run
  for k = 1, width do keys[k] = w:alloc(56 + #("key" .. k), "obj", "object", t_str) end

  local blocks                                      -- the keys tables of the current document
  local function value(d)
    if d == 0 then return w:alloc(28, "obj", "object", t_int) end
    local dict = w:alloc(64, "obj", "object gc", t_dict)
    blocks[#blocks + 1] = w:alloc(24 * width, "mem")
    for k = 1, width do
      local v = value(d - 1)
      w:link(dict, keys[k])
      w:link(dict, v)
      w:decref(v)                                   -- the parser's reference goes
    end
    return dict
  end

  w:phase("parse")
  for i = 1, docs do
    blocks = {}
    local root = value(depth)
    w:decref(root)                                  -- the document is dropped...
    for _, b in ipairs(blocks) do w:free(b) end     -- ...and its dicts' tables with it
  end
  w:phase("end")
  for k = 1, width do w:decref(keys[k]) end
end
