--[[ pare auto: the loss-aware budget search over ranks and FFN widths.

What: every block matrix's output error at every rank comes from one whitened SVD (with SVD-LLM's
whitening the dropped singular values are the error of X W^T on the calibration tokens); every
FFN's output error at every width comes from its down projection's input Gram, channels removed in
LoRAP's order. Each curve is weighted by a loss sensitivity measured on the calibration windows: the
calibration loss increase when that matrix alone is truncated (or that FFN alone narrowed) to two
probe sizes, fitted as loss = coef * error^power. One Lagrangian search over predicted loss per
parameter then chooses dense / whitened rank k / FFN width w for every matrix at once under one
budget (remove `ratio` of block-linear parameters). Sequential: block i is re-decided on the outputs
of the compressed blocks < i before it is compressed. run.json holds every decision with its
measured sensitivity (the compress step's `auto`).
Paper: pare's own policy (docs/compression.md, "auto"); the whitening is SVD-LLM's (Wang et al., 2024),
the channel score LoRAP's (Li et al., 2024), the probes ASVD's sensitivity search (Yuan et al., 2023).
Deliberate differences: no parameter update after truncation. Same settings as
`pare compress --method auto --sensitivity S --probe-samples N`.

    pare run presets/auto.lua --model DIR --set calib=TEXT --set ratio=0.3 --set eval=TEXT --out OUT
]]
local pipeline = require("pipeline")

description = "pare auto: whitened ranks and FFN widths chosen together by measured loss per parameter"

params(pipeline.declare({
    ratio = {0.2, "fraction of decoder-block linear parameters to remove", min = 0.01, max = 0.95},
    sensitivity = {"kl", "how error curves are weighted: two KL probes, two loss probes, one, or relative error only",
                   choices = {"kl", "probe", "probe1", "relative"}},
    probe_samples = {4, "calibration windows the probes score", min = 1},
    keep_least = {0.01, "LoRAP's lowest-scored fraction of FFN channels kept", min = 0, max = 0.5},
}, "calib", "eval", "export"))

function compress(m, p)
    if not p.calib then error("auto needs calibration text: --set calib=FILE", 0) end
    return m:compress(pipeline.with_calib(p, {method = "auto", ratio = p.ratio, sensitivity = p.sensitivity,
                                              probe_samples = p.probe_samples, keep_least = p.keep_least}))
end

function run(p) pipeline.run(p, compress) end
