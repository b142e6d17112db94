--[[ Tests of m:finetune, m:factorize_sparse and pare.importance, run by tests/test_lpaf.c as
  pare run tests/lua/lpaf.lua --model FIXTURE --set text=FILE --out OUT
Prints "ok lpaf" at the end and "final_loss <17 digits>" for the C test to compare with `pare finetune`;
an assertion failure is a script error naming the line. ]]
params {
    text = {nil, "a training / evaluation text", type = "string"},
}

local function check(cond, fmt, ...)
    if not cond then error(string.format(fmt or "check failed", ...), 2) end
end

local function fails(needles, f, ...)
    local ok, err = pcall(f, ...)
    check(not ok, "expected an error containing '%s', got success", needles[1])
    for _, n in ipairs(needles) do
        check(string.find(tostring(err), n, 1, true), "error '%s' lacks '%s'", tostring(err), n)
    end
end

local function has_row(method)
    for _, r in ipairs(pare.results()) do
        if r.method == method then return true end
    end
    return false
end

function run(p)
    local base = {data = p.text, steps = 6, batch = 2, seq = 16, lr = 0.01, seed = 3, log_every = 2}
    local function opts(extra)
        local o = {}
        for k, v in pairs(base) do o[k] = v end
        for k, v in pairs(extra or {}) do o[k] = v end
        return o
    end
    -- plain fine-tuning: the same numbers as `pare finetune` with the same options (the C test compares)
    local d <close> = pare.load(p.model)
    local s = d:finetune(opts())
    check(s.steps == 6 and #s.losses == 6 and s.final_loss == s.losses[6] and s.first_loss == s.losses[1],
          "stats: %d steps, %d losses", s.steps, #s.losses)
    check(s.tokens == 6 * 2 * 16 and s.tokens_per_second > 0 and s.importance == nil, "tokens %d", s.tokens)
    print(string.format("final_loss %.17g", s.final_loss))
    check(has_row("ft"), "journal: no ft row")

    -- pruning: masks at the sparsity, importance for the sparsity-aware SVD
    local m <close> = pare.load(p.model)
    local sp = m:finetune(opts{prune = {method = "movement", sparsity = 0.5, warmup = 1, cooldown = 1}})
    check(math.abs(sp.sparsity - 0.5) < 0.01, "sparsity %g", sp.sparsity)
    local info = sp.importance:info()
    check(info.method == "movement" and info.matrices == #m:info().matrices and info.weights > 0, "importance info")
    check(tostring(sp.importance):find("pare.importance", 1, true), "tostring")
    for _, mat in ipairs(m:info().matrices) do
        check(mat.kind == "masked" and math.abs(mat.density - 0.5) < 0.02, "%s %s %s", mat.name, mat.kind,
              tostring(mat.density))
    end
    check(has_row("ft-movement"), "journal: no ft-movement row")

    -- sparsity-aware SVD against the plain SVD of the same sparse matrices
    local sparse <close> = m:clone()
    local plain <close> = m:clone()
    local rp = plain:factorize_sparse{keep = 0.5, iters = 0}
    check(rp.weighting == "mask" and math.abs(rp.mean_rel_error - rp.mean_rel_error_plain) < 1e-12, "iters 0 is plain")
    local r = m:factorize_sparse{keep = 0.5, importance = sp.importance, iters = 20}
    check(r.weighting == "importance" and r.count == #m:info().matrices, "count %d", r.count)
    check(r.mean_rel_error <= r.mean_rel_error_plain, "weighted %g vs plain %g", r.mean_rel_error, r.mean_rel_error_plain)
    for _, mat in ipairs(r.matrices) do
        check(mat.rel_error <= mat.rel_error_plain * (1 + 1e-9), "%s: %g > %g", mat.name, mat.rel_error, mat.rel_error_plain)
    end
    for _, mat in ipairs(m:info().matrices) do
        check(mat.kind == "factorized" and mat.rank == math.max(1, math.floor(0.5 * mat.out * mat.orig_in / (mat.out + mat.orig_in))),
              "%s rank %s", mat.name, tostring(mat.rank))
    end
    check(has_row("ft-movement+sasvd") and has_row("ft-movement+svd-sparse"), "journal: no sasvd rows")
    local rm = sparse:clone():factorize_sparse{keep = 0.25, weighting = "mask", matrices = "q_proj"}
    check(rm.count == #m:info().matrices // 7 and rm.weighting == "mask", "pattern count %d", rm.count)
    fails({"pare.factorize_sparse: give exactly one of 'rank'"}, m.factorize_sparse, sparse, {rank = 2, keep = 0.5})
    fails({"already factorized"}, m.factorize_sparse, m, {keep = 0.5})
    fails({"weighting importance needs importance"}, sparse.factorize_sparse, sparse, {keep = 0.5, weighting = "importance"})
    fails({"unknown option 'itres'"}, sparse.factorize_sparse, sparse, {keep = 0.5, itres = 2})
    fails({"no block matrix matches"}, sparse.factorize_sparse, sparse, {keep = 0.5, matrices = "nosuch"})

    -- mixed-rank fine-tuning with distillation
    local mx = m:finetune(opts{mixed_rank = {sparse = sparse, p0 = 0.5, distill = 0.3}})
    check(mx.steps == 6 and mx.final_loss > 0, "mixed run")
    check(has_row("ft-movement+sasvd+ft-mixed"), "journal: no mixed row")
    fails({"mixed_rank.sparse must be a model"}, m.finetune, m, opts{mixed_rank = {p0 = 0.5}})
    fails({"must be another model"}, m.finetune, m, opts{mixed_rank = {sparse = m}})
    fails({"no factorized linear"}, d.finetune, d, opts{mixed_rank = {sparse = sparse}})
    fails({"pruning and mixed-rank"}, sparse.finetune, sparse, opts{prune = {}, mixed_rank = {sparse = d}})
    fails({"option 'data'"}, d.finetune, d, {steps = 2})
    fails({"unknown option 'stpes'"}, d.finetune, d, {data = p.text, stpes = 2})
    fails({"method 'momentum'"}, d.finetune, d, opts{prune = {method = "momentum"}})

    -- checkpoints: 2 steps, then a fresh model resumed to 6 equals 6 steps straight (same perplexity)
    local ck = pare.out("ck")
    local a <close> = pare.load(p.model)
    a:finetune(opts{checkpoint = ck, stop_after = 2})
    local b <close> = pare.load(p.model)
    local sb = b:finetune(opts{checkpoint = ck, resume = true})
    check(sb.steps == 6 and #sb.losses == 4 and sb.final_loss == s.final_loss, "resumed: %d steps, loss %.17g vs %.17g",
          sb.steps, sb.final_loss or -1, s.final_loss)
    check(b:eval(p.text, {window = 16}).ppl == d:eval(p.text, {window = 16}).ppl, "resumed model differs")
    print("ok lpaf")
end
