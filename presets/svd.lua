--[[ Plain truncated SVD of every decoder-block matrix at uniform ranks: the low-rank baseline.

What: every block linear keeps the same fraction 1 - ratio of its weights, i.e. rank
floor((1 - ratio) m n / (m + n)), by plain (unweighted) truncated SVD; no calibration data.
Paper: the standard low-rank baseline as reported by ASVD (Yuan et al., 2023) and SVD-LLM (Wang et
al., 2024), following the Eckart-Young truncation.
Deliberate differences: the FFN is factorized too (not channel-pruned) and every matrix gets the same
parameter fraction, not the same rank; no fine-tuning. `method = "asvd"` or `"svdllm"` switches to the
activation-weighted or whitened factorization with the same uniform ranks (presets/asvd.lua and
presets/svdllm.lua say more). Same settings as `pare compress --method svd`.

    pare run presets/svd.lua --model DIR --set ratio=0.3 --set eval=TEXT --out OUT
]]
local pipeline = require("pipeline")

description = "Uniform-rank truncated SVD of every block matrix (plain; asvd / svdllm with calibration)"

params(pipeline.declare({
    ratio = {0.2, "fraction of decoder-block linear parameters to remove", min = 0.01, max = 0.95},
    method = {"svd", "factorization", choices = {"svd", "asvd", "svdllm"}},
}, "calib", "eval", "export"))

function compress(m, p)
    if p.method ~= "svd" and not p.calib then
        error(string.format("method %s needs calibration text: --set calib=FILE", p.method), 0)
    end
    return m:compress(pipeline.with_calib(p, {method = p.method, ratio = p.ratio}))
end

function run(p) pipeline.run(p, compress) end
