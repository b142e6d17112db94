--[[ pare's global allocation: ranks chosen across all matrices under one parameter budget.

What: each block matrix's (parameters, relative weighted error) curve is computed from its spectrum
(plain, activation-weighted or whitened); the lower convex hull of every curve is taken, and hull
segments of all matrices are bought greedily by error per parameter saved until the budget (remove
`ratio` of block-linear parameters) is met. Matrices whose spectrum decays fast give up rank first;
no matrix is factorized at or above its break-even rank. The factors use the same weighting.
Paper: pare's own policy (docs/compression.md, "global"), in the spirit of the rank allocation of
"SVD-LLM V2" and of Fisher/energy-based allocations; not a published method.
Deliberate differences: none to follow; the statistics come from one-shot calibration of the dense
model. Same settings as `pare compress --method global --weighting W`.

    pare run presets/global.lua --model DIR --set calib=TEXT --set ratio=0.2 --set eval=TEXT --out OUT
]]
local pipeline = require("pipeline")

description = "pare's global allocation: convex-hull greedy ranks under one budget, weighted SVD factors"

params(pipeline.declare({
    ratio = {0.2, "fraction of decoder-block linear parameters to remove", min = 0.01, max = 0.95},
    weighting = {"act", "spectra and factors: plain, activation-weighted or whitened",
                 choices = {"none", "act", "whiten"}},
}, "calib", "eval", "export"))

function compress(m, p)
    if p.weighting ~= "none" and not p.calib then
        error("weighting " .. p.weighting .. " needs calibration text: --set calib=FILE", 0)
    end
    return m:compress(pipeline.with_calib(p, {method = "global", ratio = p.ratio, weighting = p.weighting}))
end

function run(p) pipeline.run(p, compress) end
