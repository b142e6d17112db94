--[[ SVD-LLM: truncation-aware whitened SVD of every decoder-block matrix at uniform ranks.

What: each block linear W is factorized through the SVD of W L, where L L^T is the Cholesky
factorization of the input Gram matrix X^T X from calibration; truncating W L minimizes the output
error ||X W^T - X (A B)^T|| directly (the "truncation-aware data whitening" of SVD-LLM). The factor
L^-1 is folded back into the second factor. Every matrix keeps the fraction 1 - ratio of its weights.
Paper: Wang et al., "SVD-LLM: Truncation-aware Singular Value Decomposition for Large Language Model
Compression" (2024).
Deliberate differences: no parameter update after truncation (SVD-LLM's sequential LoRA update);
an indefinite Gram is damped (adding λ·mean(diag)·I, λ starting at 1e-2; the run prints the largest
damping used) rather than failing; calibration is one-shot on the dense model.
Same settings as `pare compress --method svdllm`.

    pare run presets/svdllm.lua --model DIR --set calib=TEXT --set ratio=0.2 --set eval=TEXT --out OUT
]]
local pipeline = require("pipeline")

description = "SVD-LLM (Wang et al., 2024): whitened SVD of every block matrix at uniform ranks"

params(pipeline.declare({
    ratio = {0.2, "fraction of decoder-block linear parameters to remove", min = 0.01, max = 0.95},
}, "calib", "eval", "export"))

function compress(m, p)
    if not p.calib then error("svdllm needs calibration text: --set calib=FILE", 0) end
    local r = m:compress(pipeline.with_calib(p, {method = "svdllm", ratio = p.ratio}))
    if r.max_whiten_damping then
        print(string.format("whitening     largest damping %.3g", r.max_whiten_damping))
    end
    return r
end

function run(p) pipeline.run(p, compress) end
