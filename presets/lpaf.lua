--[[ LPAF: first-order pruning while fine-tuning, sparsity-aware SVD, mixed-rank fine-tuning.

What: the model is fine-tuned on `data` while movement (or smoothed-sensitivity) pruning removes a
fraction `sparsity` of every block matrix on the cubic schedule; each pruned matrix is then factorized
at the rank that keeps a fraction `keep` of its parameters by the sparsity-aware SVD (weighted low-rank
approximation with weights mask ⊙ first-order importance, EM from the plain SVD of the sparse matrix);
the factorized model is fine-tuned for the rest of the budget while each factorized linear runs, with
probability p decaying from p0 to 0 over the first half, as its frozen sparse full-rank counterpart.
Perplexity is measured right after factorization (and, with compare_plain, for the plain SVD of the
same sparse matrices) and at the end.
`variant` runs a baseline with the same fine-tuning budget (`steps` in all): `svd-ft` (plain SVD of the
dense model at `keep`, then fine-tuning), `movement` (movement pruning alone to 1 - keep, the sparse
model is the result), `lorap-ft` (LoRAP at ratio 1 - keep on `data`, then fine-tuning), `auto-ft` (pare's loss-aware
budget search, presets/auto.lua, at ratio 1 - keep on `data`, then fine-tuning), `dense-ft`.
Paper: Ren & Zhu, "Low-Rank Prune-And-Factorize for Language Model Compression" (2023); movement
pruning, Sanh et al. (NeurIPS 2020); PLATON, Zhang et al. (ICML 2022); weighted low-rank EM, Srebro &
Jaakkola (ICML 2003).
Deliberate differences: causal language modelling on a text instead of fine-tuning on GLUE tasks;
masks only shrink (a pruned weight is stored as zero and cannot return); the importance weighting the
SVD is the EMA of |W ⊙ ∇W| over the last steps (PLATON's Ī), scaled to [0, 1] by its maximum per
matrix; a replaced linear's factors skip the AdamW update of that step (torch's grad=None); parameter
counts are those of the decoder-block linears (docs/training.md).

    pare run presets/lpaf.lua --model DIR --set data=TRAIN --set eval=TEST --set keep=0.5 --out OUT
]]
local pipeline = require("pipeline")

description = "LPAF (Ren & Zhu 2023): first-order pruning during fine-tuning, sparsity-aware SVD, mixed-rank "
    .. "fine-tuning; variant= runs the baselines at the same fine-tuning budget"

params(pipeline.declare({
    data = {nil, "training text (UTF-8)", type = "string"},
    keep = {0.5, "fraction of decoder-block linear parameters kept", min = 0.01, max = 0.99},
    variant = {"lpaf", "what to run", choices = {"lpaf", "svd-ft", "movement", "lorap-ft", "auto-ft", "dense-ft"}},
    steps = {200, "fine-tuning steps in all (the budget every variant gets)", min = 1},
    prune_share = {0.5, "lpaf: share of the steps spent pruning (the rest is mixed-rank fine-tuning)", min = 0.05, max = 0.95},
    sparsity = {-1.0, "lpaf: sparsity the pruning phase reaches (-1: 1 - keep, the same parameter count)", min = -1, max = 0.99},
    prune = {"movement", "first-order score", choices = {"movement", "sensitivity", "magnitude"}},
    prune_warmup = {0.1, "share of a pruning phase kept dense at its start", min = 0, max = 0.5},
    prune_cooldown = {0.2, "share of a pruning phase with the final masks frozen", min = 0, max = 0.5},
    weighting = {"importance", "lpaf: sparsity-aware SVD weights", choices = {"importance", "mask"}},
    svd_iters = {30, "lpaf: EM iterations of the sparsity-aware SVD (0: plain SVD of the sparse matrix)", min = 0},
    quantile = {1.0, "lpaf: importance scaled by this quantile over the kept weights, clipped to 1 (1: the maximum)",
                min = 0.01, max = 1},
    compare_plain = {true, "lpaf: also evaluate the plain SVD of the sparse matrices right after factorization"},
    p0 = {0.5, "lpaf: mixed-rank replacement probability at the start of its phase (0: off)", min = 0, max = 1},
    distill = {0.0, "lpaf: weight of the distillation loss to the sparse model's logits", min = 0, max = 1},
    batch = {8, "sequences per step", min = 1},
    seq = {128, "tokens per sequence", min = 2},
    lr = {3e-4, "peak learning rate (cosine to lr/10, 5% warmup)", min = 0},
    seed = {0, "seed of the training windows", min = 0},
    calib_samples = {64, "lorap-ft, auto-ft: calibration windows from data", min = 1},
}, "eval", "export"))

local function ft_opts(p, steps, extra)
    local o = {data = p.data, steps = steps, batch = p.batch, seq = p.seq, lr = p.lr, seed = p.seed,
               warmup = math.max(1, steps // 20), log_every = math.max(1, steps // 10)}
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
end

local function prune_opts(p, steps, sparsity)
    return {method = p.prune, sparsity = sparsity, warmup = math.floor(p.prune_warmup * steps),
            cooldown = math.floor(p.prune_cooldown * steps)}
end

-- Evaluates on the first eval file with a label in the log; nil without eval files.
local function checkpoint_eval(m, p, label)
    local file = pipeline.split_list(p.eval)[1]
    if not file then return nil end
    local e = m:eval(file, {window = p.window})
    pare.log(string.format("[lpaf] %s: ppl %.4f on %s", label, e.ppl, file))
    pare.record(label, e.ppl)
    return e.ppl
end

function compress(m, p)
    local keep = p.keep
    if p.variant == "dense-ft" then
        m:finetune(ft_opts(p, p.steps))
        return {method = "dense-ft", what = "fine-tuning only"}
    elseif p.variant == "svd-ft" then
        m:factorize{keep = keep}
        checkpoint_eval(m, p, "after_factorization")
        m:finetune(ft_opts(p, p.steps))
        return {method = "svd-ft", what = "plain SVD of the dense model, then fine-tuning"}
    elseif p.variant == "lorap-ft" or p.variant == "auto-ft" then
        -- calibrated on the training text: the windows fine-tuning will see, not the evaluation text
        local method = p.variant:match("^(%a+)")
        m:compress{method = method, ratio = 1 - keep, calib = p.data, calib_samples = p.calib_samples,
                   calib_len = p.seq, seed = p.seed}
        checkpoint_eval(m, p, "after_compression")
        m:finetune(ft_opts(p, p.steps))
        return {method = p.variant, what = method .. " compression on data, then fine-tuning"}
    elseif p.variant == "movement" then
        local s = m:finetune(ft_opts(p, p.steps, {prune = prune_opts(p, p.steps, 1 - keep)}))
        pare.record("sparsity", s.sparsity)
        return {method = "movement", what = p.prune .. " pruning during fine-tuning"}
    end
    -- LPAF
    local s1 = p.sparsity >= 0 and p.sparsity or 1 - keep
    local n1 = math.max(1, math.floor(p.prune_share * p.steps + 0.5))
    local n2 = p.steps - n1
    local ft = m:finetune(ft_opts(p, n1, {prune = prune_opts(p, n1, s1)}))
    pare.record("sparsity", ft.sparsity)
    checkpoint_eval(m, p, "after_pruning")
    local sparse <close> = m:clone()
    if p.compare_plain then
        local plain <close> = m:clone()
        local r = plain:factorize_sparse{keep = keep, iters = 0}
        pare.record("plain_weighted_error", r.mean_rel_error)
        checkpoint_eval(plain, p, "plain_svd_after_factorization")
    end
    local r = m:factorize_sparse{keep = keep, importance = p.weighting == "importance" and ft.importance or nil,
                                 weighting = p.weighting, iters = p.svd_iters,
                                 quantile = p.quantile ~= 1 and p.quantile or nil}
    pare.log(string.format("[lpaf] sparsity-aware SVD: mean weighted error %.4f (plain SVD of the sparse matrix %.4f)",
        r.mean_rel_error, r.mean_rel_error_plain))
    pare.record("weighted_error", r.mean_rel_error)
    pare.record("weighted_error_plain", r.mean_rel_error_plain)
    checkpoint_eval(m, p, "after_factorization")
    if n2 > 0 then
        local mix = (p.p0 > 0 or p.distill > 0) and {sparse = sparse, p0 = p.p0, distill = p.distill} or nil
        m:finetune(ft_opts(p, n2, {mixed_rank = mix, seed = p.seed + 1}))
    end
    return {method = "lpaf", what = string.format("%s pruning to %.2f, sparsity-aware SVD (%s), mixed rank p0 %.2f",
        p.prune, s1, p.weighting, p.p0)}
end

function run(p) pipeline.run(p, compress) end
