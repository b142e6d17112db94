--[[ Tests of every `pare` module function, run by tests/test_lua.c as
  pare run tests/lua/module.lua --model FIXTURE --set text=FILE --set group=NAME --out OUT
Each group asserts with check()/fails() and prints "ok GROUP" at its end; an assertion failure is a
script error naming the line. Expected values are computed here from the module's own outputs
(e.g. a clone's perplexity equals its source's) or the C test checks them against the CLI. ]]
params {
    group = {"load", "which group of checks to run", type = "string"},
    text = {nil, "a text file for calibration and evaluation", type = "string"},
    expect = {"", "a value the C test computed with the CLI, for comparison", type = "string"},
}

local function check(cond, fmt, ...)
    if not cond then error(string.format(fmt or "check failed", ...), 2) end
end

-- f(...) must raise an error containing every needle (plain find).
local function fails(needles, f, ...)
    local ok, err = pcall(f, ...)
    check(not ok, "expected an error containing '%s', got success", needles[1])
    for _, n in ipairs(needles) do
        check(string.find(tostring(err), n, 1, true), "error '%s' lacks '%s'", tostring(err), n)
    end
end

local function close(a, b, tol) return math.abs(a - b) <= tol * math.max(1, math.abs(b)) end

local groups = {}

function groups.load(p)
    local m <close> = pare.load(p.model)
    check(tostring(m):find("pare.model", 1, true), "tostring: %s", tostring(m))
    fails({"pare.load", "no/such/model"}, pare.load, "no/such/model")
    fails({"pare.load: unknown option 'tokenzier'"}, pare.load, p.model, {tokenzier = "x"})
    fails({"bad argument #1"}, pare.load, {})
    m:close()
    fails({"pare.info: the model was closed"}, m.info, m)
    check(pare.version:match("^%d+%.%d+%.%d+$"), "version %s", pare.version)
end

function groups.info(p)
    local m <close> = pare.load(p.model)
    local i = m:info()
    check(i.layers > 0 and i.dim > 0 and i.vocab > 0, "shape fields")
    check(#i.matrices == i.layers * (i.arch:find("GPT2") and 6 or 7), "%d matrices for %d layers", #i.matrices, i.layers)
    local sum = 0
    for _, mat in ipairs(i.matrices) do
        check(mat.kind == "dense" and mat.params >= mat.out * mat.orig_in, "%s dense", mat.name)
        sum = sum + mat.params
    end
    check(sum == i.params.block_linear, "block linear sum %d vs %d", sum, i.params.block_linear)
    check(i.params.block_linear == i.params.block_linear_dense and i.params.block_linear_removed == 0, "dense counts")
    check(i.params.total == i.params.embeddings + i.params.block_linear + i.params.norms + i.params.head, "total")
end

function groups.eval(p)
    local m <close> = pare.load(p.model)
    local e = m:eval(p.text, {window = 32})
    check(e.window == 32 and e.predicted > 0 and close(e.ppl, math.exp(e.nll / e.predicted), 1e-9), "ppl %g", e.ppl)
    check(e.data_sha256 and #e.data_sha256 == 64, "data hash")
    if p.expect ~= "" then check(close(e.ppl, tonumber(p.expect), 1e-8), "ppl %.17g vs CLI %s", e.ppl, p.expect) end
    fails({"pare.eval", "absent.txt"}, m.eval, m, "absent.txt")
    fails({"pare.eval: option 'window' = 1 is out of range"}, m.eval, m, p.text, {window = 1})
    fails({"pare.eval: unknown option 'windw'"}, m.eval, m, p.text, {windw = 8})
end

function groups.plan(p)
    local m <close> = pare.load(p.model)
    local before = m:info().params.block_linear
    local plan = m:plan{method = "svd", ratio = 0.3}
    check(m:info().params.block_linear == before, "plan changed the model")
    check(plan.params_before >= plan.params_after and #plan.items == #m:info().matrices, "plan shape")
    for _, it in ipairs(plan.items) do check(it.action == "factorize" and it.rank >= 1, "%s %s", it.name, it.action) end
    local r = m:compress{method = "svd", ratio = 0.3}
    local after = 0
    for _, mat in ipairs(m:info().matrices) do after = after + mat.params end
    check(r.block_linear_after == after, "compress report %d vs info %d", r.block_linear_after, after)
    local i = 0
    for _, mat in ipairs(m:info().matrices) do
        i = i + 1
        check(mat.rank == plan.items[i].rank, "%s: rank %s, planned %d", mat.name, tostring(mat.rank), plan.items[i].rank)
    end
    fails({"pare.plan: method 'nope'", "lorap"}, m.plan, m, {method = "nope"})
    fails({"pare.plan: ratio 0.9999 cannot be met", "largest feasible ratio"}, m.plan, m,
          {method = "svd", ratio = 0.9999, keep_least = 0})
end

function groups.clone(p)
    local a <close> = pare.load(p.model)
    local dense = a:eval(p.text, {window = 32}).ppl
    local b <close> = a:clone()
    check(b:eval(p.text, {window = 32}).ppl == dense, "a clone evaluates like its source")
    b:compress{method = "svd", ratio = 0.5}
    check(a:info().params.block_linear_removed == 0, "compressing the clone changed the source")
    check(a:eval(p.text, {window = 32}).ppl == dense, "source perplexity changed")
    local c <close> = b:clone() -- a clone of a compressed model keeps its factors
    check(c:eval(p.text, {window = 32}).ppl == b:eval(p.text, {window = 32}).ppl, "clone of compressed")
    b:close()
    check(c:info().params.block_linear == c:info().params.block_linear, "the clone outlives its source")
    check(c:eval(p.text, {window = 32}).ppl > 0, "clone usable after source closed")
end

function groups.calibrate(p)
    local m <close> = pare.load(p.model)
    local c <close> = m:calibrate{data = p.text, samples = 4, len = 32, seed = 3}
    local i = c:info()
    check(i.samples == 4 and i.len == 32 and i.seed == 3 and i.layers == m:info().layers and i.bytes > 0, "calib info")
    check(i.data.path == p.text and #i.data.sha256 == 64, "calib data record")
    check(tostring(c):find("4 windows x 32 tokens", 1, true), "%s", tostring(c))
    fails({"pare.calibrate: option 'data'"}, m.calibrate, m, {samples = 4})
    fails({"pare.calibrate", "absent.txt"}, m.calibrate, m, {data = "absent.txt"})
    fails({"pare.calibrate: option 'samples' = 0"}, m.calibrate, m, {data = p.text, samples = 0})
    c:close()
    fails({"the calibration statistics were closed"}, m.spectra, m, {weighting = "act", calib = c})
    fails({"option 'calib' must be calibration statistics"}, m.spectra, m, {calib = 3})
end

function groups.spectra(p)
    local m <close> = pare.load(p.model)
    local s = m:spectra{}
    check(#s == #m:info().matrices, "one spectrum per matrix")
    for _, x in ipairs(s) do
        check(#x.values == math.min(x.out, x["in"]), "%s: %d values", x.name, #x.values)
        for j = 2, #x.values do check(x.values[j] <= x.values[j - 1], "%s: values not descending", x.name) end
        check(close(x.s_max, x.values[1], 1e-12) and x.rank90 <= x.rank95 and x.rank95 <= x.rank99, "%s stats", x.name)
        check(x.break_even == (x.out * x["in"]) // (x.out + x["in"]), "%s break-even", x.name)
    end
    local q = m:spectra{matrices = "q", values = false}
    check(#q == m:info().layers and q[1].values == nil, "matrices = 'q': %d", #q)
    local pat = m:spectra{matrices = "%.0%.", values = false}
    check(#pat >= 6 and #pat <= 7, "a Lua pattern selects layer 0: %d", #pat)
    fails({"pare.spectra: weighting act needs calib"}, m.spectra, m, {weighting = "act"})
    fails({"pare.spectra: option 'matrices' 'nothing_like_this' matches no block matrix"}, m.spectra, m,
          {matrices = "nothing_like_this"})
    fails({"pare.spectra: weighting 'white'", "none, act, whiten"}, m.spectra, m, {weighting = "white"})
    local c <close> = m:calibrate{data = p.text, samples = 4, len = 32, gram = true}
    local w = m:spectra{weighting = "whiten", calib = c, matrices = "v", values = false}
    check(#w == m:info().layers and w[1].weighting == "whiten", "whitened spectra")
end

function groups.factorize(p)
    local m <close> = pare.load(p.model)
    local s = m:spectra{matrices = "q"}
    local q = s[1]
    local k = math.max(1, q.break_even // 2)
    -- every rank is checked before anything changes
    local big = math.min(q.out, q["in"]) + 1
    fails({string.format("pare.factorize: rank %d exceeds min(%d, %d) for %s", big, q.out, q["in"], q.name)},
          m.factorize, m, {rank = big, matrices = "q"})
    check(m:info().params.block_linear_removed == 0, "a refused factorize changed the model")
    fails({"give exactly one of 'rank'"}, m.factorize, m, {rank = 2, keep = 0.5})
    fails({"give exactly one of 'rank'"}, m.factorize, m, {})
    fails({"pare.factorize: weighting act needs calib"}, m.factorize, m, {rank = 2, weighting = "act"})
    local r = m:factorize{rank = k, matrices = "q"}
    check(r.count == m:info().layers and r.params_after < r.params_before, "factorize report")
    -- the relative error is the spectrum's truncation error sqrt(sum_{i>k} s_i^2 / sum s_i^2)
    local tail, all = 0, 0
    for j, v in ipairs(q.values) do
        all = all + v * v
        if j > k then tail = tail + v * v end
    end
    check(close(r.matrices[1].rel_error, math.sqrt(tail / all), 1e-4), "rel error %g vs spectrum %g",
          r.matrices[1].rel_error, math.sqrt(tail / all))
    for _, mat in ipairs(m:info().matrices) do
        if mat.name:find("q_proj", 1, true) or mat.name:find("attn.c_attn.q", 1, true) then
            check(mat.kind == "factorized" and mat.rank == k and mat.params == k * (mat.out + mat["in"]) +
                  (mat.params - k * (mat.out + mat["in"])), "%s", mat.name)
        end
    end
    local c <close> = m:calibrate{data = p.text, samples = 4, len = 32}
    local r2 = m:factorize{keep = 0.5, matrices = "v,o", weighting = "act", calib = c}
    check(r2.weighting == "act" and r2.count == 2 * m:info().layers, "keep/act")
    local rows = pare.results()
    check(#rows >= 1 and rows[#rows].method == "svd+asvd", "journal method %s", rows[#rows] and rows[#rows].method)
end

function groups.prune(p)
    local m <close> = pare.load(p.model)
    local r = m:prune{method = "magnitude", sparsity = 0.5, matrices = "mlp"}
    check(math.abs(r.sparsity - 0.5) < 0.01 and r.masked == r.removed, "magnitude sparsity %g", r.sparsity)
    for _, mat in ipairs(m:info().matrices) do
        local mlp = not (mat.name:find("attn", 1, true))
        check((mat.kind == "masked") == mlp, "%s %s", mat.name, mat.kind)
        if mlp then check(math.abs(mat.density - 0.5) < 0.01, "%s density %g", mat.name, mat.density) end
    end
    fails({"pare.prune: method wanda needs calib"}, m.prune, m, {method = "wanda", sparsity = 0.5})
    fails({"pare.prune: option 'sparsity'"}, m.prune, m, {method = "magnitude"})
    fails({"pare.prune: sparsity 1.5"}, m.prune, m, {method = "magnitude", sparsity = 1.5})
    fails({"pare.prune: nm '3:2'"}, m.prune, m, {method = "magnitude", nm = "3:2"})
    local c <close> = m:calibrate{data = p.text, samples = 4, len = 32}
    local n = m:prune{method = "wanda", nm = "2:4", calib = c, matrices = "attn"}
    check(math.abs(n.sparsity - 0.5) < 1e-9, "2:4 sparsity %g", n.sparsity)
    local f = m:clone()
    local ch = f:prune{method = "channels", sparsity = 0.25, calib = c}
    check(ch.channels_after < ch.channels_before, "channels %d -> %d", ch.channels_before, ch.channels_after)
    fails({"pare.prune: unknown option 'matrices'"}, f.prune, f, {method = "channels", sparsity = 0.1, matrices = "q", calib = c})
    f:close()
end

function groups.generate(p)
    local m <close> = pare.load(p.model)
    local text, n = m:generate("ab", {max_new = 8})
    check(type(text) == "string" and n >= 1 and n <= 8, "generate: %d tokens", n)
    check(m:generate("ab", {max_new = 8}) == text, "greedy generation is deterministic")
    if p.expect ~= "" then check(text == p.expect, "'%s' vs CLI '%s'", text, p.expect) end
    fails({"pare.generate: option 'max_new' = 0"}, m.generate, m, "ab", {max_new = 0})
    fails({"bad argument #2", "string expected, got table"}, m.generate, m, {})
end

function groups.progress(p)
    local m <close> = pare.load(p.model)
    local seen, stages = 0, {}
    pare.on_progress(function(stage, fraction, detail)
        seen = seen + 1
        stages[stage] = true
        check(fraction >= 0 and fraction <= 1, "fraction %g", fraction)
    end)
    m:eval(p.text, {window = 32})
    check(seen > 0 and stages.eval, "progress hook not called")
    pare.on_progress(function() return false end)
    fails({"pare.eval: cancelled by the progress hook"}, m.eval, m, p.text, {window = 32})
    pare.on_progress(function() error("hook boom") end)
    fails({"pare.eval: progress hook", "hook boom"}, m.eval, m, p.text, {window = 32})
    pare.on_progress(nil)
    m:eval(p.text, {window = 32})
    pare.log("a log line", 42)
    local names = {}
    for _, me in ipairs(pare.methods()) do names[me.name] = me.what end
    check(names.lorap and names.svd and names.wanda and names.global, "pare.methods")
end

function groups.task(p)
    -- p.text is a PIQA folder (valid.jsonl + valid-labels.lst) the C test wrote; p.expect its CLI acc
    local m <close> = pare.load(p.model)
    local r = m:eval_task("piqa", p.text)
    check(r.n == 4 and r.acc >= 0 and r.acc <= 1 and r.acc_norm >= 0 and r.acc_norm <= 1, "n %d acc %g", r.n, r.acc)
    if p.expect ~= "" then check(close(r.acc, tonumber(p.expect), 1e-9), "acc %g vs CLI %s", r.acc, p.expect) end
    check(m:eval_task("piqa", p.text, {limit = 2}).n == 2, "limit")
    local rows = pare.results()
    local names = {}
    for _, metric in ipairs(rows[1].metrics) do names[metric.name .. " " .. metric.data] = metric.value end
    check(names["acc piqa"] ~= nil, "acc recorded (the later limit = 2 call replaced the value)")
    check(names["acc_norm piqa"] ~= nil, "acc_norm recorded")
    fails({"pare.eval_task: unknown task 'piqq'", "piqa, arc-easy, boolq, hellaswag"}, m.eval_task, m, "piqq", p.text)
    fails({"pare.eval_task", "no-such-folder"}, m.eval_task, m, "piqa", "no-such-folder")
    fails({"pare.eval_task: unknown option 'limt'"}, m.eval_task, m, "piqa", p.text, {limt = 1})
end

function groups.record(p)
    check(pare.out():len() > 0 and pare.out("x.txt") == pare.out() .. "/x.txt", "pare.out")
    fails({"pare.out"}, pare.out, "../escape")
    pare.record("answer", 42)
    pare.record("nested", {a = 1, list = {1, 2, 3}})
    fails({"pare.record: f is a function"}, pare.record, "f", print)
    local m <close> = pare.load(p.model)
    m:eval(p.text, {window = 32})
    m:compress{method = "svd", ratio = 0.3}
    m:eval(p.text, {window = 32})
    local x = m:export(pare.out("model"), {format = "pare"})
    check(x.bytes > 0, "export")
    local rows = pare.results()
    check(#rows == 2 and rows[1].method == "dense" and rows[2].method == "svd", "%d rows", #rows)
    check(#rows[2].metrics == 1 and rows[2].metrics[1].name == "ppl", "metrics")
end

-- m:round_weights and m:export{factor_dtype}: the model rounded in memory evaluates as its reload does.
function groups.factor_dtype(p)
    local m <close> = pare.load(p.model)
    m:compress{method = "svd", ratio = 0.3}
    local f32 = m:eval(p.text, {window = 32}).ppl
    local x = m:export(pare.out("model-f32"), {format = "pare"})
    check(x.factor_dtype == "F32", "default factor_dtype %s", tostring(x.factor_dtype))
    m:round_weights("bf16")
    local bf16 = m:eval(p.text, {window = 32}).ppl
    local y = m:export(pare.out("model-bf16"), {format = "pare", factor_dtype = "bf16"})
    check(y.factor_dtype == "BF16" and y.bytes < x.bytes, "bf16 export: %s, %d bytes (f32 %d)",
          tostring(y.factor_dtype), y.bytes, x.bytes)
    local r <close> = pare.load(y.path)
    local reloaded = r:eval(p.text, {window = 32}).ppl
    check(reloaded == bf16 and bf16 ~= f32, "bf16 %.17g, reloaded %.17g, f32 %.17g", bf16, reloaded, f32)
    fails({"pare.round_weights", "'int8'"}, m.round_weights, m, "int8")
    fails({"pare.export", "factor dtype 'int8'"}, m.export, m, pare.out("bad"), {factor_dtype = "int8"})
end

-- Plots (run by tests/test_charts.c): every chart writes its PNG into OUT (listed in run.json's
-- "plots" by the session) or returns its text; options and matrices are checked.
function groups.plots(p)
    local m <close> = pare.load(p.model)
    local gpt2 = m:info().arch:find("GPT2") ~= nil
    local c <close> = m:calibrate{data = p.text, samples = 4, len = 32, gram = true}
    check(m:plot_spectrum{matrix = "0.q", calib = c, rank = 3} == pare.out("spectrum_0.q.png"), "spectrum path")
    check(m:plot_spectra{type = "v", weighting = "act", calib = c} == pare.out("spectra_v.png"), "spectra path")
    check(m:plot_energy_ranks{weighting = "whiten", calib = c, path = pare.out("energy.png")} == pare.out("energy.png"),
          "energy path")
    m:prune{method = "magnitude", sparsity = 0.5, matrices = "q"}
    check(m:plot_mask{matrix = m:info().matrices[1].name, tile = 4} == pare.out("mask_0.q.png"), "mask path")
    m:prune{method = "channels-magnitude", sparsity = 0.25}
    check(m:plot_channels{} == pare.out("channels.png"), "channels path")
    local f <close> = pare.load(p.model)
    f:compress{method = "svd", ratio = 0.3}
    local text = f:plot_budget{terminal = true, ascii = true, width = 70, height = 20}
    check(type(text) == "string" and text:find("parameters kept per matrix", 1, true) and not text:find("[\128-\255]"),
          "budget text: %s", tostring(text))
    check(f:plot_budget{title = "budget"} == pare.out("budget.png"), "budget path")
    f:eval(p.text, {window = 32})
    local rows = {{series = "a", params = 2, value = 3}, {series = "a", params = 1, value = 4},
                  {series = "b", params = 1.5, value = 3.5}}
    check(pare.plot_size_quality(rows, {path = pare.out("sq.png"), log_x = true}) == pare.out("sq.png"), "sq path")
    check(pare.plot_size_quality(pare.results(), {convention = "total", metric = "ppl", terminal = true}):find("ppl", 1, true),
          "size-quality of the results")
    fails({"pare.plot_spectrum: matrix 'nosuch'", m:info().matrices[1].name}, m.plot_spectrum, m, {matrix = "nosuch"})
    fails({"pare.plot_spectrum: unknown option 'rnk'"}, m.plot_spectrum, m, {matrix = "0.q", rnk = 2})
    fails({"pare.plot_spectrum: option 'matrix'"}, m.plot_spectrum, m, {})
    fails({"pare.plot_spectra: type 'gat'", "gate"}, m.plot_spectra, m, {type = "gat"})
    if gpt2 then fails({"no gate matrices"}, m.plot_spectra, m, {type = "gate"}) end
    fails({"pare.plot_spectra: weighting act needs calib"}, m.plot_spectra, m, {type = "q", weighting = "act"})
    fails({"pare.plot_mask", "factorized"}, f.plot_mask, f, {matrix = "0.q"})
    fails({"pare.plot_budget: give path = FILE.png or terminal = true, not both"}, m.plot_budget, m,
          {path = "x.png", terminal = true})
    fails({"pare.plot_size_quality", "logarithmic"}, pare.plot_size_quality, {{series = "a", params = 0, value = 1}},
          {log_x = true, terminal = true})
    fails({"pare.plot_size_quality: no row has the metric 'acc'"}, pare.plot_size_quality, pare.results(),
          {metric = "acc", terminal = true})
    fails({"pare.plot_size_quality: row 1"}, pare.plot_size_quality, {{series = "a"}}, {terminal = true})
    fails({"pare.plot_budget", "no_such_dir"}, m.plot_budget, m, {path = pare.out("no_such_dir/b.png")})
end

function run(p)
    local f = groups[p.group] or error("no group " .. p.group, 0)
    f(p)
    print("ok " .. p.group)
end
