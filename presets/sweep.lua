--[[ Sweep: one preset over a list of ratios, for a size-vs-perplexity curve.

What: loads the model once, evaluates it dense, then for every ratio compresses a fresh copy with the
chosen preset's compress(m, p) (its own defaults, overridable with `args`) and evaluates it on the
same texts. Every configuration becomes a row of OUT/run.json ("results"): parameters under both
conventions, per-matrix decisions, perplexities with their protocol cards. `pare compare OUT ...`
turns one or several sweeps into a table (CSV / Markdown); docs/results.md is made that way.
Paper: none; the protocol of the size-vs-quality curves in LoRAP, ASVD and SVD-LLM.
Deliberate differences: the dense model is calibrated anew for each ratio (each preset calibrates as
it would alone), so every point equals a separate `pare run` of the preset at that ratio.

    pare run presets/sweep.lua --model DIR --set preset=lorap --set ratios=0.1,0.2,0.3,0.4,0.5 \
        --set calib=TEXT --set eval=TEXT --out OUT
]]
local pipeline = require("pipeline")
local report = require("report")

description = "Runs a preset over several ratios (one result row each) for size-vs-perplexity curves"

params(pipeline.declare({
    preset = {"lorap", "preset to sweep: a name in presets/ or a .lua path", type = "string"},
    ratios = {"0.1,0.2,0.3,0.4,0.5", "comma-separated ratios", type = "string"},
    args = {"", "the preset's own parameters, e.g. split=2,keep_least=0", type = "string"},
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

function run(p)
    local preset = pipeline.load_preset(p.preset, here)
    if not preset.decls.ratio then error(preset.path .. " has no ratio parameter to sweep", 0) end
    local ratios = {}
    for _, r in ipairs(pipeline.split_list(p.ratios)) do
        ratios[#ratios + 1] = tonumber(r) or error("ratios: '" .. r .. "' is not a number", 0)
    end
    if #ratios == 0 then error("ratios: give at least one ratio", 0) end
    local base <close> = pare.load(p.model)
    if p.dense then pipeline.evaluate(base, p) end
    for _, ratio in ipairs(ratios) do
        print(string.format("-- %s at ratio %g", p.preset, ratio))
        local m <close> = base:clone()
        local q = preset_params(preset, p, ratio)
        preset.compress(m, q)
        for _, line in ipairs(report.compression({}, m:info())) do print(line) end
        pipeline.evaluate(m, q)
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
    pare.record("sweep", {preset = p.preset, ratios = ratios})
end
