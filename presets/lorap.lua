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

    pare run presets/lorap.lua --model DIR --set calib=TEXT --set ratio=0.2 --set eval=TEXT
]]
description = "LoRAP (Li et al., ICML 2024): activation-weighted SVD attention with a (V,O):(Q,K) split, "
    .. "LoRAP FFN channel pruning, sequential calibration"

params {
    ratio = {0.2, "fraction of decoder-block linear parameters to remove", min = 0.01, max = 0.95},
    method = {"lorap", "lorap, or its ablation with plain SVD and magnitude channel scores",
              choices = {"lorap", "lorap-magnitude"}},
    split = {3.0, "(V,O) : (Q,K) parameter split a", min = 0.01, max = 100},
    keep_least = {0.01, "lowest-scored fraction of FFN channels always kept", min = 0, max = 0.5},
    calib = {nil, "calibration text (UTF-8 file)", type = "string"},
    calib_samples = {128, "calibration windows", min = 1},
    calib_len = {256, "tokens per calibration window", min = 2},
    seed = {0, "seed of the calibration window positions", min = 0},
    eval = {nil, "text to evaluate the compressed model on", type = "string", optional = true},
    window = {256, "evaluation window (tokens)", min = 2},
    out = {nil, "export the compressed model to this folder", type = "string", optional = true},
    format = {"pare", "export format", choices = {"pare", "hf-dense"}},
    overwrite = {false, "replace an existing export folder"},
}

function run(p)
    local m <close> = pare.load(p.model)
    local r = m:compress {
        method = p.method, ratio = p.ratio, split = p.split, keep_least = p.keep_least,
        calib = p.calib, calib_samples = p.calib_samples, calib_len = p.calib_len, seed = p.seed,
    }
    print(string.format("method        %s: %s", r.method, r.what))
    print(string.format("ratio         %.3f of decoder-block linear parameters (LoRAP policy)", r.ratio))
    print(string.format("block linears %d -> %d (%.1f%% removed)", r.block_linear_before, r.block_linear_after,
                        100 * r.block_linear_removed))
    print(string.format("all params    %d -> %d (%.1f%% removed, embeddings and head included)", r.total_before,
                        r.total_after, 100 * r.total_removed))
    print(string.format("matrices      %d factorized (worst relative error %.3f), %d FFNs channel-pruned",
                        r.factorized, r.worst_rel_error, r.channel_blocks))
    if p.eval then
        local e = m:eval(p.eval, {window = p.window})
        print(string.format("perplexity    %.17g on %s (window %d, %d targets)", e.ppl, e.data, e.window, e.predicted))
    end
    if p.out then
        local x = m:export(p.out, {format = p.format, overwrite = p.overwrite})
        print(string.format("exported      %s (%s, %.2f MiB)", x.path, x.format, x.bytes / 2 ^ 20))
    end
end
