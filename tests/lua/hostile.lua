--[[ Hostile recipes of issue 19, run by tests/test_lua.c (test_busy_objects, test_record_limits) as
  pare run tests/lua/hostile.lua --model FIXTURE --set case=NAME --set text=FILE --out OUT
Progress hooks that close, collect or re-enter what the running operation holds must get a Lua error
naming the operation (never freed memory); pare.record refuses values run.json cannot hold, naming
the key path; run.json survives a recipe that makes the result rows cyclic. Cases that must succeed
print "ok CASE". ]]
params {
    case = {"export", "which hostile input", type = "string"},
    text = {nil, "a text file for calibration and evaluation", type = "string"},
}

-- A hook that closes the model the operation runs on and collects it.
local function closing_hook(m)
    return function()
        pare.on_progress(nil)
        m:close()
        collectgarbage()
    end
end

-- {a = {a = ... {leaf = true}}} with n tables.
local function nested(n)
    local t = {leaf = true}
    for _ = 2, n do t = {a = t} end
    return t
end

local cases = {}

function cases.export(m, p)
    pare.on_progress(closing_hook(m))
    m:export(pare.out("model"))
end

function cases.lorap(m, p)
    pare.on_progress(closing_hook(m))
    m:compress{method = "lorap", ratio = 0.3, calib = p.text, calib_samples = 2, calib_len = 16}
end

function cases.eval(m, p)
    pare.on_progress(closing_hook(m))
    m:eval(p.text, {window = 16})
end

function cases.compress_in_eval(m, p)
    pare.on_progress(function()
        pare.on_progress(nil)
        m:compress{method = "svd", ratio = 0.5}
    end)
    m:eval(p.text, {window = 16})
end

function cases.calib_close(m, p)
    local c = m:calibrate{data = p.text, samples = 2, len = 16}
    pare.on_progress(function()
        pare.on_progress(nil)
        c:close()
    end)
    m:spectra{weighting = "act", calib = c}
end

-- The option table holds the only references to the statistics and the weighting name; the hook
-- drops them and collects: the operation keeps both.
function cases.options(m, p)
    local o = {weighting = "act", calib = m:calibrate{data = p.text, samples = 2, len = 16}}
    pare.on_progress(function()
        o.calib, o.weighting = nil, nil
        collectgarbage()
    end)
    local s = m:spectra(o)
    assert(#s > 0 and s[1].weighting == "act")
    print("ok options")
end

-- An error in the hook cancels the export: nothing left behind, the model still usable.
function cases.hook_error(m, p)
    pare.on_progress(function() error("hook fails") end)
    local ok, err = pcall(m.export, m, pare.out("model"))
    assert(not ok and err:find("hook fails", 1, true), tostring(err))
    pare.on_progress(nil)
    local e = m:eval(p.text, {window = 16})
    local x = m:export(pare.out("model"))
    assert(e.ppl > 0 and x.files > 0)
    print("ok hook_error")
end

function cases.deep12(m, p)
    local t = nested(12)
    pare.record("deep", t)
    t.a = "changed after recording" -- the record is a copy
    print("ok deep12")
end

function cases.deep40(m, p) pare.record("deep", nested(40)) end

function cases.cycle(m, p)
    local t = {list = {1, 2}}
    t.self = t
    pare.record("t", t)
end

function cases.func(m, p) pare.record("t", {list = {1, print}}) end

function cases.nan(m, p) pare.record("t", {x = 0 / 0}) end

function cases.key(m, p) pare.record("t", {sub = {[true] = 1}}) end

-- The result rows are the journal's own tables: a cycle in them must not break run.json.
function cases.rows_cycle(m, p)
    m:eval(p.text, {window = 16})
    local rows = pare.results()
    rows[1].loop = rows
    print("ok rows_cycle")
end

function run(p)
    local m <close> = pare.load(p.model)
    assert(cases[p.case], "no case " .. p.case)(m, p)
end
