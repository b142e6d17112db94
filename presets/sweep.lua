--[[ Sweep: one or several presets over a list of ratios, for size-vs-perplexity curves.

What: loads the model once, evaluates it dense, then for every preset and ratio compresses a fresh copy
with the preset's compress(m, p) (its own defaults, overridable with `args`) and evaluates it on the
same texts. Every configuration becomes a row of OUT/run.json ("results"): parameters under both
conventions, per-matrix decisions, perplexities with their protocol cards. `pare compare OUT ...`
turns one or several sweeps into a table (CSV / Markdown); docs/results.md is made that way.
Paper: none; the protocol of the size-vs-quality curves in LoRAP, ASVD and SVD-LLM.
Deliberate differences: the dense model is calibrated anew for each ratio (each preset calibrates as
it would alone), so every point equals a separate `pare run` of the preset at that ratio.

    pare run presets/sweep.lua --model DIR --set preset=lorap --set ratios=0.1,0.2,0.3,0.4,0.5 \
        --set calib=TEXT --set eval=TEXT --out OUT

Points: every (preset, ratio) and the dense evaluation is a point (points(p) below), so
`pare run presets/sweep.lua ... --emit-jobs FILE --out OUT` writes one `pare run` of this recipe per
point, for GNU parallel or a Slurm array, and `pare compare OUT` merges them (docs/sweeps.md).
]]
local pipeline = require("pipeline")
local report = require("report")

description = "Runs a preset over several ratios (one result row each) for size-vs-perplexity curves"

params(pipeline.declare({
    preset = {"lorap", "presets to sweep, comma-separated: names in presets/ or .lua paths", type = "string"},
    ratios = {"0.1,0.2,0.3,0.4,0.5", "comma-separated ratios", type = "string"},
    args = {"", "the presets' own parameters, e.g. split=2,keep_least=0 (every preset must have them)",
            type = "string"},
    dense = {true, "evaluate the uncompressed model too"},
}, "calib", "eval"))

-- this file's folder; sandboxed there is no debug library, and load_preset searches package.path
local here = debug and (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".")

-- The preset's parameter values: its defaults, sweep's shared ones, then `args` (checked by type).
local function preset_params(preset, p, ratio)
    local q = {}
    for name, d in pairs(preset.decls) do q[name] = d[1] end
    for _, name in ipairs({"calib", "calib_samples", "calib_len", "seed", "eval", "window", "model"}) do
        q[name] = p[name]
    end
    for _, kv in ipairs(pipeline.split_list(p.args)) do
        local k, v = kv:match("^([%w_]+)=(.*)$")
        local d = k and preset.decls[k]
        if not d then error(string.format("args: '%s' is not name=value of a parameter of %s", kv, preset.path), 0) end
        local t = d.type or math.type(d[1]) or type(d[1])
        if t == "float" or t == "integer" or t == "number" then
            v = tonumber(v) or error(string.format("args: %s must be a number, got '%s'", k, v), 0)
        elseif t == "boolean" then
            v = (v == "true" or v == "1")
        end
        if d.min and v < d.min or d.max and v > d.max then
            error(string.format("args: %s = %s is outside [%s, %s]", k, tostring(v), tostring(d.min), tostring(d.max)), 0)
        end
        if d.choices then
            local ok = false
            for _, c in ipairs(d.choices) do ok = ok or c == v end
            if not ok then error(string.format("args: %s = %s: expected one of %s", k, tostring(v),
                                               table.concat(d.choices, ", ")), 0) end
        end
        q[k] = v
    end
    q.ratio = ratio
    q.export = false
    return q
end

-- The presets and the ratios (as written, so that a point's text parses to the same number).
local function sweep_lists(p)
    local presets, ratios = {}, {}
    for _, name in ipairs(pipeline.split_list(p.preset)) do
        local preset = pipeline.load_preset(name, here)
        if not preset.decls.ratio then error(preset.path .. " has no ratio parameter to sweep", 0) end
        presets[#presets + 1] = {name = name, preset = preset}
    end
    if #presets == 0 then error("preset: give at least one preset", 0) end
    for _, r in ipairs(pipeline.split_list(p.ratios)) do
        ratios[#ratios + 1] = {text = r, value = tonumber(r) or error("ratios: '" .. r .. "' is not a number", 0)}
    end
    if #ratios == 0 and not p.dense then error("ratios: give at least one ratio", 0) end
    return presets, ratios
end

-- One point per configuration, in the order run(p) computes them: each is this recipe narrowed to it.
function points(p)
    local presets, ratios = sweep_lists(p)
    local list = {}
    if p.dense then list[1] = {name = "dense", set = {ratios = "", dense = true}} end
    for _, e in ipairs(presets) do
        local base = e.name:match("([^/]*)$"):gsub("%.lua$", "")
        for _, r in ipairs(ratios) do
            list[#list + 1] = {name = base .. "-" .. r.text, set = {preset = e.name, ratios = r.text, dense = false}}
        end
    end
    return list
end

function run(p)
    local presets, ratios = sweep_lists(p)
    local base <close> = pare.load(p.model)
    if p.dense then pipeline.evaluate(base, p) end
    for _, e in ipairs(presets) do
        for _, r in ipairs(ratios) do
            print(string.format("-- %s at ratio %g", e.name, r.value))
            local m <close> = base:clone()
            local q = preset_params(e.preset, p, r.value)
            e.preset.compress(m, q)
            for _, line in ipairs(report.compression({}, m:info())) do print(line) end
            pipeline.evaluate(m, q)
        end
    end
    local rows = {}
    for _, row in ipairs(pare.results()) do
        for _, metric in ipairs(row.metrics) do
            rows[#rows + 1] = {method = row.method, removed = row.params.block_linear_removed,
                              total = row.params.total, ppl = metric.value, data = metric.data:match("[^/]*$")}
        end
    end
    print("")
    for _, line in ipairs(report.table(rows, {{"method", "method"}, {"block linears removed", "removed"},
                                              {"params", "total"}, {"ppl", "ppl"}, {"data", "data"}})) do
        print(line)
    end
    local values = {}
    for i, r in ipairs(ratios) do values[i] = r.value end
    pare.record("sweep", {preset = p.preset, ratios = values})
end
