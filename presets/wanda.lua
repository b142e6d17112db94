--[[ Wanda: unstructured pruning by |W_ij| * ||X_j||, compared within each output row.

What: every decoder-block linear loses the fraction `ratio` of its weights with the lowest score
|W_ij|·||X_j|| (X_j the input channel's activations from calibration), the comparison group being one
output row, as the paper does. `nm = "2:4"` (or 4:8) gives the semi-structured N:M variant instead:
in each group of M consecutive inputs of a row the N highest-scored weights are kept.
Paper: Sun et al., "A Simple and Effective Pruning Approach for Large Language Models" (ICLR 2024).
Deliberate differences: masked weights are kept in place as zeros (the parameter count counts kept
entries; the export writes masks), calibration windows follow pare's seeded protocol; no weight
update. Same settings as `pare compress --method wanda` when nm is unset.

    pare run presets/wanda.lua --model DIR --set calib=TEXT --set ratio=0.5 --set eval=TEXT --out OUT
]]
local pipeline = require("pipeline")

description = "Wanda (Sun et al., ICLR 2024): unstructured |W|·||X|| pruning per output row, or N:M"

params(pipeline.declare({
    ratio = {0.5, "fraction of block-linear weights to remove (ignored with nm)", min = 0.01, max = 0.95},
    nm = {"", "semi-structured N:M pattern, e.g. 2:4 (empty: unstructured)", type = "string"},
}, "calib", "eval", "export"))

function compress(m, p)
    if not p.calib then error("wanda needs calibration text: --set calib=FILE", 0) end
    if p.nm == "" then
        return m:compress(pipeline.with_calib(p, {method = "wanda", ratio = p.ratio}))
    end
    local c <close> = m:calibrate{data = p.calib, samples = p.calib_samples, len = p.calib_len, seed = p.seed}
    local r = m:prune{method = "wanda", nm = p.nm, calib = c}
    r.method = "wanda " .. p.nm
    return r
end

function run(p) pipeline.run(p, compress) end
