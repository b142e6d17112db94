--[[ Magnitude pruning: the zeroth-order baseline.

What: every decoder-block linear loses the fraction `ratio` of its weights with the smallest |W_ij|,
one threshold per matrix (scope "matrix"), per output row ("row") or over all block matrices at once
("global"). No calibration data.
Paper: the classic baseline (Han et al., "Learning both Weights and Connections for Efficient Neural
Networks", NeurIPS 2015), as Wanda and SparseGPT report it for LLMs.
Deliberate differences: one-shot, no retraining; masked weights stay in place as zeros.
`pare compress --method magnitude` is the per-matrix scope.

    pare run presets/magnitude.lua --model DIR --set ratio=0.5 --set eval=TEXT --out OUT
]]
local pipeline = require("pipeline")

description = "Magnitude pruning (the zeroth-order baseline): smallest |W| per matrix, row or globally"

params(pipeline.declare({
    ratio = {0.5, "fraction of block-linear weights to remove", min = 0.01, max = 0.95},
    scope = {"matrix", "comparison group of the threshold", choices = {"matrix", "row", "global"}},
}, "eval", "export"))

function compress(m, p)
    if p.scope == "matrix" then return m:compress{method = "magnitude", ratio = p.ratio} end
    return m:prune{method = "magnitude", sparsity = p.ratio, scope = p.scope}
end

function run(p) pipeline.run(p, compress) end
