--[[ pipeline: the pieces every preset shares, so a preset states only what is its own.

  local pipeline = require("pipeline")
  params(pipeline.declare({ratio = {0.2, "..."}}, "calib", "eval", "export"))
  function compress(m, p) return m:compress(pipeline.with_calib(p, {method = "svd", ratio = p.ratio})) end
  function run(p) pipeline.run(p, compress) end

pipeline.run loads the model, calls compress(m, p), prints the compression summary, evaluates on
every file of p.eval and exports to OUT/model when p.export is set. Everything it does is recorded
in run.json by the pare module (steps, decisions, metrics); nothing here needs to write files.
]]
local report = require("report")

local pipeline = {}

-- Parameter groups a preset can include by name.
pipeline.groups = {
    calib = {
        calib = {nil, "calibration text (UTF-8 file)", type = "string", optional = true},
        calib_samples = {128, "calibration windows", min = 1},
        calib_len = {256, "tokens per calibration window", min = 2},
        seed = {0, "seed of the calibration window positions", min = 0},
    },
    eval = {
        eval = {nil, "texts to evaluate on, comma-separated", type = "string", optional = true},
        window = {256, "evaluation window (tokens)", min = 2},
    },
    export = {
        export = {false, "write the compressed model into OUT/model"},
        format = {"pare", "export format", choices = {"pare", "hf-dense"}},
        dtype = {"F32", "hf-dense weight dtype", choices = {"F32", "F16", "BF16"}},
        factor_dtype = {"F32", "pare format: dtype of the block matrices (F32 reloads exactly)",
                        choices = {"F32", "F16", "BF16"}},
    },
}

-- The preset's own declarations merged with the named groups (a name declared twice is an error).
function pipeline.declare(own, ...)
    local all = {}
    for k, v in pairs(own) do all[k] = v end
    for _, g in ipairs({...}) do
        local group = pipeline.groups[g] or error("pipeline.declare: no parameter group '" .. tostring(g) .. "'", 2)
        for k, v in pairs(group) do
            if all[k] then error("pipeline.declare: parameter '" .. k .. "' declared twice", 2) end
            all[k] = v
        end
    end
    return all
end

-- opts plus the calibration options from p (calib, calib_samples, calib_len, seed).
function pipeline.with_calib(p, opts)
    opts.calib = p.calib
    opts.calib_samples = p.calib_samples
    opts.calib_len = p.calib_len
    opts.seed = p.seed
    return opts
end

-- The comma-separated list in s as a table ({} for nil or "").
function pipeline.split_list(s)
    local list = {}
    for item in string.gmatch(s or "", "[^,]+") do
        list[#list + 1] = item:match("^%s*(.-)%s*$")
    end
    return list
end

-- Evaluates m on every file in p.eval; returns the results in order.
function pipeline.evaluate(m, p)
    local results = {}
    for _, file in ipairs(pipeline.split_list(p.eval)) do
        local e = m:eval(file, {window = p.window})
        print(report.eval_line(e))
        results[#results + 1] = e
    end
    return results
end

-- Exports m into OUT/model when p.export is set; returns the export report or nil.
function pipeline.export(m, p)
    if not p.export then return nil end
    local x = m:export(pare.out("model"),
        {format = p.format, dtype = p.dtype, factor_dtype = p.factor_dtype, overwrite = true})
    print(string.format("exported      %s (%s, %.2f MiB)", x.path, x.format, x.bytes / 2 ^ 20))
    return x
end

-- The standard run: load, compress(m, p), summary, evaluation, export. With a factor_dtype other
-- than F32 the block matrices are rounded before the evaluation, so it measures the model as stored.
function pipeline.run(p, compress)
    if p.export and p.format ~= "pare" and p.factor_dtype ~= "F32" then
        error("factor_dtype " .. p.factor_dtype .. " applies to format pare; hf-dense stores every tensor in dtype", 2)
    end
    local m <close> = pare.load(p.model)
    local r = compress(m, p)
    for _, line in ipairs(report.compression(r, m:info())) do print(line) end
    if p.factor_dtype ~= "F32" then m:round_weights(p.factor_dtype) end
    pipeline.evaluate(m, p)
    pipeline.export(m, p)
    return m
end

--[[ Loads another preset's declarations and compress function without running it (sweep.lua):
returns {decls = {...}, compress = f, description = s}. name is a preset name ("lorap") looked up
in dir (nil: along package.path, which holds the recipe's folder), or a path ending in .lua. ]]
function pipeline.load_preset(name, dir)
    local path = name:match("%.lua$") and name
        or (dir and dir .. "/" .. name .. ".lua" or package.searchpath(name, package.path) or name .. ".lua")
    local decls
    local env = setmetatable({params = function(t) decls = t end}, {__index = _G})
    local chunk, err = loadfile(path, "t", env)
    if not chunk then error("cannot load preset " .. path .. ": " .. err, 2) end
    chunk()
    if type(env.compress) ~= "function" then
        error("preset " .. path .. " defines no compress(m, p) function", 2)
    end
    return {decls = decls or {}, compress = env.compress, description = env.description, path = path}
end

return pipeline
