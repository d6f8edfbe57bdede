-- sim/data/lua/prelude.lua: runs in every environment's sandbox before the script (sim/luaenv.c).
-- Defines the helpers scripts may use (spairs, deep_equal, deep_copy, array, object; json_null
-- and the array / object marks are set from C) and returns the runtime's internal functions
-- (argument validation, the scripted user, built-in checks), which C keeps in the registry.
-- The contract is docs/environments.md.

local ARRAY_MT, OBJECT_MT = ...   -- passed by C: the marks the JSON converter reads

function array(t) return setmetatable(t or {}, ARRAY_MT) end
function object(t) return setmetatable(t or {}, OBJECT_MT) end

local function key_less(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    return a < b
end

-- pairs in sorted key order (numbers before strings), so iteration order is deterministic
function spairs(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, key_less)
    local i = 0
    return function()
        i = i + 1
        local k = keys[i]
        if k ~= nil then return k, t[k] end
    end
end

-- a task family drawn for the curriculum's expected number of calls: family f has weight
-- 1 / (1 + |f.calls - (expected_calls + 1)|), so families of about that length come up most
function pick_family(rng, families, expected_calls)
    local ec, w, tot = expected_calls or 1, {}, 0
    for i, f in ipairs(families) do
        w[i] = 1.0 / (1 + math.abs(f.calls - (ec + 1)))
        tot = tot + w[i]
    end
    local x = rng:float() * tot
    for i, f in ipairs(families) do
        x = x - w[i]
        if x < 0 then return f.name end
    end
    return families[#families].name
end

-- the oracle's opening: one question asking the user for every hidden fact (none when the query
-- left nothing out); returns the steps list for the family's oracle to append to
function ask_facts_first(task)
    local keys = {}
    for k in spairs(task.facts) do keys[#keys + 1] = k end
    if #keys == 0 then return {} end
    return {{ask = keys}}
end

-- The sample_task of an environment made of task families: picks the family (when not given),
-- builds the world (e.gen_world(rng) -> state, extra) and the task (e.builders[family](rng,
-- aspects, state, extra) -> {query, facts, checks, tools, solution[, fact_phrases]}), adds one
-- "revealed" check per hidden fact (named e.fact_check .. the fact), wraps the query in the persona
-- (e.persona_wrap) and picks the system prompt (e.system[level + 1]).
function family_task(rng, aspects, family, e)
  family = family or pick_family(rng, e.families, aspects.expected_calls)
  local st, extra = e.gen_world(rng)
  local b = e.builders[family]
  if not b then error("unknown family '" .. tostring(family) .. "'") end
  local t = b(rng, aspects, st, extra)
  for k in spairs(t.facts) do
    t.checks[#t.checks + 1] = {name = e.fact_check .. k:gsub("_", " "), fn = "revealed", args = {key = k}}
  end
  return {family = family, query = e.persona_wrap(aspects, t.query), system = e.system[(aspects.system_prompt or 0) + 1],
          facts = object(t.facts), fact_phrases = t.fact_phrases, state = st, tools = t.tools, checks = t.checks,
          solution = t.solution}
end

-- The oracle of such an environment: ask for every hidden fact, then the family's own steps
function family_oracle(oracles, task)
  local steps = ask_facts_first(task)
  oracles[task.family](task, task.solution, steps)
  return steps
end

function deep_equal(a, b)
    if a == b then return true end
    if type(a) == "number" and type(b) == "number" then return a == b end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    for k, v in pairs(a) do
        if not deep_equal(v, b[k]) then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end

function deep_copy(v)
    if type(v) ~= "table" then return v end
    local t = {}
    for k, x in pairs(v) do t[k] = deep_copy(x) end
    return setmetatable(t, getmetatable(v))
end

local RT = {}

-- ---- argument validation against a tool's parameters schema ----

local function json_type_ok(want, v)
    local t = type(v)
    if want == "string" then return t == "string"
    elseif want == "boolean" then return t == "boolean"
    elseif want == "number" then return t == "number"
    elseif want == "integer" then return math.type(v) == "integer" or (t == "number" and v == math.floor(v) and v == v)
    elseif want == "array" then
        if t ~= "table" then return false end
        if getmetatable(v) == OBJECT_MT then return false end
        local n = 0
        for _ in pairs(v) do n = n + 1 end
        return n == #v
    elseif want == "object" then
        if t ~= "table" then return false end
        if getmetatable(v) == OBJECT_MT then return true end
        local n = 0
        for _ in pairs(v) do n = n + 1 end
        return n == 0 or #v == 0
    elseif want == "null" then return v == json_null
    end
    return false
end

local function describe(v)
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) == "table" then return "a " .. (#v > 0 and "list" or "table") end
    return tostring(v)
end

local function validate_value(schema, v, where)
    local want = schema.type
    if want ~= nil and not json_type_ok(want, v) then
        return string.format("argument '%s' must be of type %s, got %s", where, want, describe(v))
    end
    if schema.enum ~= nil then
        local ok = false
        for _, e in ipairs(schema.enum) do
            if deep_equal(e, v) then ok = true break end
        end
        if not ok then
            local names = {}
            for _, e in ipairs(schema.enum) do names[#names + 1] = tostring(e) end
            return string.format("argument '%s' must be one of: %s (got %s)", where,
                                 table.concat(names, ", "), describe(v))
        end
    end
    if type(v) == "number" then
        if schema.minimum ~= nil and v < schema.minimum then
            return string.format("argument '%s' must be >= %s (got %s)", where, tostring(schema.minimum), tostring(v))
        end
        if schema.maximum ~= nil and v > schema.maximum then
            return string.format("argument '%s' must be <= %s (got %s)", where, tostring(schema.maximum), tostring(v))
        end
    end
    if want == "array" and schema.items ~= nil then
        for i, x in ipairs(v) do
            local err = validate_value(schema.items, x, where .. "[" .. (i - 1) .. "]")
            if err then return err end
        end
    end
    if want == "object" and schema.properties ~= nil then
        return RT.validate_args(schema, v, where .. ".")
    end
    return nil
end

-- nil when args fit the object schema, else a message for the agent
function RT.validate_args(schema, args, prefix)
    prefix = prefix or ""
    local props = schema.properties or {}
    for k, v in spairs(args) do
        if type(k) ~= "string" or props[k] == nil then
            local names = {}
            for name in spairs(props) do names[#names + 1] = name end
            return string.format("unknown argument '%s%s' (expected: %s)", prefix, tostring(k),
                                 #names > 0 and table.concat(names, ", ") or "no arguments")
        end
        local err = validate_value(props[k], v, prefix .. k)
        if err then return err end
        if props[k].type == "integer" and math.type(v) == "float" then args[k] = math.tointeger(v) end
    end
    for _, k in ipairs(schema.required or {}) do
        if args[k] == nil then
            return string.format("missing required argument '%s%s'", prefix, k)
        end
    end
    return nil
end

-- ---- the scripted user (docs/environments.md section 4) ----

local function phrases_of(env, task, key)
    local list = {}
    local p = (task.fact_phrases and task.fact_phrases[key]) or (env.fact_phrases and env.fact_phrases[key])
    if type(p) == "string" then p = {p} end
    if type(p) == "table" then
        for _, s in ipairs(p) do list[#list + 1] = string.lower(s) end
    end
    list[#list + 1] = string.lower((string.gsub(key, "_", " ")))
    list[#list + 1] = string.lower(key)
    return list
end

-- the facts an agent text asks for: list of keys in sorted order
function RT.asked_keys(env, task, text)
    local low = string.lower(text or "")
    local keys = {}
    for key in spairs(task.facts or {}) do
        for _, p in ipairs(phrases_of(env, task, key)) do
            if p ~= "" and string.find(low, p, 1, true) then
                keys[#keys + 1] = key
                break
            end
        end
    end
    return keys
end

-- reply text (and the keys revealed), or nil when the user ends the episode
function RT.user_reply(env, task, text, revealed)
    if not string.find(text or "", "?", 1, true) then return nil end
    local keys = RT.asked_keys(env, task, text)
    if #keys == 0 then return nil end
    local parts = {}
    for _, key in ipairs(keys) do
        local phrase = phrases_of(env, task, key)[1]
        parts[#parts + 1] = string.format("My %s is %s.", phrase, tostring(task.facts[key]))
        revealed[key] = true
    end
    return table.concat(parts, " ")
end

-- the default text of an oracle `ask` step
function RT.ask_text(env, task, keys)
    local names = {}
    for _, key in ipairs(keys) do names[#names + 1] = phrases_of(env, task, key)[1] end
    local list
    if #names == 1 then list = names[1]
    else list = table.concat(names, ", ", 1, #names - 1) .. " and " .. names[#names] end
    return "Could you tell me your " .. list .. "?"
end

-- ---- built-in checks (usable as a check's fn) ----

local function get_path(t, path)
    local v = t
    for _, k in ipairs(path) do
        if type(v) ~= "table" then return nil end
        v = v[k]
    end
    return v
end

local function args_include(have, with)
    if with == nil then return true end
    if type(have) ~= "table" then return false end
    for k, v in pairs(with) do
        if not deep_equal(have[k], v) then return false end
    end
    return true
end

RT.builtin_checks = {
    equals = function(state, args, ctx)
        return deep_equal(get_path(state, args.path or {}), args.value)
    end,
    called = function(state, args, ctx)
        for _, c in ipairs(ctx.calls) do
            if c.name == args.name and c.success and args_include(c.args, args.with) then return true end
        end
        return false
    end,
    not_called = function(state, args, ctx)
        for _, c in ipairs(ctx.calls) do
            if c.name == args.name and c.success then return false end
        end
        return true
    end,
    revealed = function(state, args, ctx)
        return ctx.revealed[args.key] == true
    end,
    said = function(state, args, ctx)
        return string.find(string.lower(ctx.final_text or ""), string.lower(args.text), 1, true) ~= nil
    end,
}

-- ---- structure checks of an env table: returns nil, or a message and a function near the fault ----

local function is_list(t)
    if type(t) ~= "table" then return false end
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n == #t
end

local function check_schema(s, where, fn)
    if type(s) ~= "table" then return where .. " must be a table (a JSON schema)", fn end
    if s.type == nil then return where .. " has no 'type'", fn end
    local known = {string = 1, integer = 1, number = 1, boolean = 1, array = 1, object = 1, null = 1}
    if not known[s.type] then
        return string.format("%s has unknown type '%s' (expected string, integer, number, boolean, array, object or null)",
                             where, tostring(s.type)), fn
    end
    if s.enum ~= nil and (not is_list(s.enum) or #s.enum == 0) then
        return where .. ".enum must be a non-empty list", fn
    end
    if s.type == "array" and s.items ~= nil then
        local m, f = check_schema(s.items, where .. ".items", fn)
        if m then return m, f end
    end
    if s.type == "object" and s.properties ~= nil then
        if type(s.properties) ~= "table" then return where .. ".properties must be a table", fn end
        for k, p in spairs(s.properties) do
            local m, f = check_schema(p, where .. ".properties." .. tostring(k), fn)
            if m then return m, f end
        end
    end
    return nil
end

function RT.check_env(env, stem)
    if type(env) ~= "table" then return "the script must return a table (the environment), got " .. type(env) end
    if type(env.name) ~= "string" or env.name == "" then return "missing required field 'name' (a string)" end
    if stem and env.name ~= stem then
        return string.format("field 'name' is '%s' but the file is named '%s.lua'", env.name, stem)
    end
    if type(env.description) ~= "string" or env.description == "" then
        return "missing required field 'description' (a string)"
    end
    if not is_list(env.tools) or #env.tools == 0 then return "missing required field 'tools' (a non-empty list)" end
    if not is_list(env.families) or #env.families == 0 then
        return "missing required field 'families' (a non-empty list of {name=, description=})"
    end
    if type(env.sample_task) ~= "function" then return "missing required field 'sample_task' (a function)" end
    if type(env.oracle) ~= "function" then return "missing required field 'oracle' (a function)", nil end
    if env.checks ~= nil and type(env.checks) ~= "table" then return "field 'checks' must be a table" end
    local seen = {}
    for i, t in ipairs(env.tools) do
        if type(t) ~= "table" then return string.format("tools[%d] must be a table", i) end
        local fn = t.run
        if type(t.name) ~= "string" or not string.match(t.name, "^[A-Za-z_][A-Za-z0-9_]*$") then
            return string.format("tools[%d] has no valid 'name' (an identifier)", i), fn
        end
        local where = string.format("tool '%s'", t.name)
        if seen[t.name] then return where .. " is defined twice", fn end
        seen[t.name] = true
        if type(t.description) ~= "string" or t.description == "" then
            return where .. ": missing 'description' (a string)", fn
        end
        if type(fn) ~= "function" then return where .. ": missing 'run' (a function(state, args))" end
        local p = t.parameters
        if type(p) ~= "table" or p.type ~= "object" then
            return where .. ": 'parameters' must be a JSON schema object: a table with type = \"object\"", fn
        end
        if p.properties ~= nil and type(p.properties) ~= "table" then
            return where .. ": 'parameters.properties' must be a table", fn
        end
        for k, ps in spairs(p.properties or {}) do
            if type(k) ~= "string" then return where .. ": property names must be strings", fn end
            local m = check_schema(ps, "parameters.properties." .. k, fn)
            if m then return where .. ": " .. m, fn end
            if type(ps.description) ~= "string" then
                return where .. ": property '" .. k .. "' has no 'description'", fn
            end
        end
        if p.required ~= nil then
            if not is_list(p.required) then return where .. ": 'parameters.required' must be a list", fn end
            for _, r in ipairs(p.required) do
                if (p.properties or {})[r] == nil then
                    return string.format("%s: required '%s' is not a property", where, tostring(r)), fn
                end
            end
        end
    end
    for i, f in ipairs(env.families) do
        if type(f) ~= "table" or type(f.name) ~= "string" then
            return string.format("families[%d] must be a table with a 'name' string", i)
        end
    end
    return nil
end

-- the JSON form of a tool's parameters: properties always an object
function RT.schema_for_json(s)
    local c = deep_copy(s)
    local function mark(x)
        if type(x) ~= "table" then return end
        if x.properties ~= nil then
            object(x.properties)
            for _, p in pairs(x.properties) do mark(p) end
        end
        if x.items ~= nil then mark(x.items) end
        if x.required ~= nil then array(x.required) end
    end
    c.properties = c.properties or {}
    mark(c)
    return c
end

return RT
