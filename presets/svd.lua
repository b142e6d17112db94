--[[ Plain truncated SVD of every decoder-block matrix at uniform ranks: the baseline.

What: every block linear keeps the same fraction 1 - ratio of its weights, i.e. rank
floor((1 - ratio) m n / (m + n)), by plain (unweighted) truncated SVD; no calibration data.
Paper: the standard low-rank baseline as reported by ASVD (Yuan et al., 2023) and SVD-LLM (Wang et
al., 2024), following the Eckart-Young truncation.
Deliberate differences: the FFN is factorized too (not channel-pruned) and every matrix gets the same
parameter fraction, not the same rank; no fine-tuning. `method = "asvd"` or `"svdllm"` switches to the
activation-weighted or whitened factorization with the same uniform ranks (they need calib).
Same settings as `pare compress --method svd`.

    pare run presets/svd.lua --model DIR --set ratio=0.3 --set eval=TEXT
]]
description = "Uniform-rank truncated SVD of every block matrix (plain; asvd / svdllm with calibration)"

params {
    ratio = {0.2, "fraction of decoder-block linear parameters to remove", min = 0.01, max = 0.95},
    method = {"svd", "factorization", choices = {"svd", "asvd", "svdllm"}},
    calib = {nil, "calibration text (asvd and svdllm need it)", type = "string", optional = true},
    calib_samples = {128, "calibration windows", min = 1},
    calib_len = {256, "tokens per calibration window", min = 2},
    seed = {0, "seed of the calibration window positions", min = 0},
    eval = {nil, "text to evaluate the compressed model on", type = "string", optional = true},
    window = {256, "evaluation window (tokens)", min = 2},
    out = {nil, "export the compressed model to this folder", type = "string", optional = true},
    format = {"pare", "export format", choices = {"pare", "hf-dense"}},
}

function run(p)
    if p.method ~= "svd" and not p.calib then
        error(string.format("method %s needs calibration text: --set calib=FILE", p.method), 0)
    end
    local m <close> = pare.load(p.model)
    local r = m:compress {
        method = p.method, ratio = p.ratio, calib = p.calib,
        calib_samples = p.calib_samples, calib_len = p.calib_len, seed = p.seed,
    }
    print(string.format("method        %s: %s", r.method, r.what))
    print(string.format("block linears %d -> %d (%.1f%% removed)", r.block_linear_before, r.block_linear_after,
                        100 * r.block_linear_removed))
    print(string.format("all params    %d -> %d (%.1f%% removed, embeddings and head included)", r.total_before,
                        r.total_after, 100 * r.total_removed))
    print(string.format("matrices      %d factorized (worst relative error %.3f)", r.factorized, r.worst_rel_error))
    if p.eval then
        local e = m:eval(p.eval, {window = p.window})
        print(string.format("perplexity    %.17g on %s (window %d, %d targets)", e.ppl, e.data, e.window, e.predicted))
    end
    if p.out then
        local x = m:export(p.out, {format = p.format})
        print(string.format("exported      %s (%s, %.2f MiB)", x.path, x.format, x.bytes / 2 ^ 20))
    end
end
