--[[ ASVD: activation-aware SVD of every decoder-block matrix at uniform ranks.

What: each block linear W is factorized through the SVD of W diag(||X_j||) — the input channel norms
from calibration — and the scaling is undone in the second factor, so channels that carry large
activations are approximated better. Every matrix keeps the fraction 1 - ratio of its weights.
Paper: Yuan et al., "ASVD: Activation-aware Singular Value Decomposition for Compressing Large
Language Models" (2023).
Deliberate differences: the scale is the plain per-channel L2 norm (ASVD's alpha = 1 with mean
absolute values replaced by RMS-like norms, as LoRAP's AWSVD uses) and ranks are uniform by parameter
fraction, not ASVD's sensitivity-based rank search; calibration is one-shot on the dense model.
Same settings as `pare compress --method asvd`.

    pare run presets/asvd.lua --model DIR --set calib=TEXT --set ratio=0.2 --set eval=TEXT --out OUT
]]
local pipeline = require("pipeline")

description = "ASVD (Yuan et al., 2023): activation-weighted SVD of every block matrix at uniform ranks"

params(pipeline.declare({
    ratio = {0.2, "fraction of decoder-block linear parameters to remove", min = 0.01, max = 0.95},
}, "calib", "eval", "export"))

function compress(m, p)
    if not p.calib then error("asvd needs calibration text: --set calib=FILE", 0) end
    return m:compress(pipeline.with_calib(p, {method = "asvd", ratio = p.ratio}))
end

function run(p) pipeline.run(p, compress) end
