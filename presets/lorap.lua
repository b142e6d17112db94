--[[ LoRAP: low-rank attention + FFN channel pruning at a target ratio, calibrated sequentially.

What: attention matrices are factorized by activation-weighted SVD, with the (V, O) pair getting a
times the parameters of the (Q, K) pair (split a, default 3); the FFN loses a fraction `ratio` of
its channels by LoRAP's score (the lowest-scored `keep_least` fraction is kept). Each block is
calibrated on the output of the already compressed blocks before it (sequential).
Paper: Li et al., "LoRAP: Transformer Sub-Layers Deserve Differentiated Structured Compression for
Large Language Models" (ICML 2024).
Deliberate differences: no LoRA fine-tuning after compression (LoRAP's optional recovery step);
calibration windows are drawn from the given text with a seeded random start, pare's protocol
(docs/compression.md), not the paper's C4 samples; perplexity follows pare eval's stated protocol.
Same settings as `pare compress --method lorap`, and the same perplexity (tests/test_lua.c).

    pare run presets/lorap.lua --model DIR --set calib=TEXT --set ratio=0.2 --set eval=TEXT --out OUT
]]
local pipeline = require("pipeline")

description = "LoRAP (Li et al., ICML 2024): activation-weighted SVD attention with a (V,O):(Q,K) split, "
    .. "LoRAP FFN channel pruning, sequential calibration"

params(pipeline.declare({
    ratio = {0.2, "fraction of decoder-block linear parameters to remove", min = 0.01, max = 0.95},
    method = {"lorap", "lorap, or its ablation with plain SVD and magnitude channel scores",
              choices = {"lorap", "lorap-magnitude"}},
    split = {3.0, "(V,O) : (Q,K) parameter split a", min = 0.01, max = 100},
    keep_least = {0.01, "lowest-scored fraction of FFN channels always kept", min = 0, max = 0.5},
}, "calib", "eval", "export"))

function compress(m, p)
    if p.method == "lorap" and not p.calib then
        error("lorap needs calibration text: --set calib=FILE", 0)
    end
    return m:compress(pipeline.with_calib(p, {method = p.method, ratio = p.ratio, split = p.split,
                                               keep_least = p.keep_least}))
end

function run(p) pipeline.run(p, compress) end
