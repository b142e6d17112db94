--[[ LPAF's observation: are matrices pruned with first-order scores closer to low rank?

What: for each pruning method (movement and magnitude by default) and each sparsity, the model is
fine-tuned on `data` while it is pruned on the cubic schedule; then the spectrum of every pruned block
matrix (zeros included) gives its 95%-energy rank and effective rank (Roy & Vetterli). The table lists,
per run, the parameters retained and the averages of both ranks over the block matrices, as counts and
as fractions of the full rank min(m, n); `dense = true` adds the model fine-tuned for the same steps
without pruning. Every row is also kept in run.json's records (under METHOD_SPARSITY).
Paper: Ren & Zhu, "Low-Rank Prune-And-Factorize for Language Model Compression" (2023), which reports
that first-order (movement) pruning leaves matrices of lower rank than magnitude pruning.
Deliberate differences: causal language modelling on a text instead of GLUE fine-tuning; masks only
shrink; ranks from the plain spectrum of W (no activation weighting).

    pare run presets/lpaf_rank.lua --model DIR --set data=TRAIN --set sparsities=0.5,0.7,0.9 --out OUT
]]
local pipeline = require("pipeline")
local report = require("report")

description = "Rank of pruned matrices (95% energy, effective rank) vs parameters retained: movement vs "
    .. "magnitude pruning during fine-tuning, and the dense fine-tuned model"

params {
    data = {nil, "training text (UTF-8)", type = "string"},
    sparsities = {"0.5,0.7,0.9", "comma-separated sparsities", type = "string"},
    methods = {"movement,magnitude", "comma-separated pruning methods (movement, sensitivity, magnitude)",
               type = "string"},
    dense = {true, "also the model fine-tuned without pruning"},
    steps = {100, "fine-tuning steps of every run", min = 1},
    batch = {8, "sequences per step", min = 1},
    seq = {128, "tokens per sequence", min = 2},
    lr = {3e-4, "peak learning rate (cosine to lr/10)", min = 0},
    seed = {0, "seed of the training windows", min = 0},
    prune_warmup = {0.1, "share of the steps kept dense at the start", min = 0, max = 0.5},
    prune_cooldown = {0.2, "share of the steps with the final masks frozen", min = 0, max = 0.5},
}

-- Means over the block matrices of the 95%-energy rank and the effective rank, absolute and as a
-- fraction of min(m, n).
local function ranks(m)
    local n, r95, reff, f95, feff = 0, 0, 0, 0, 0
    for _, s in ipairs(m:spectra{values = false}) do
        local full = math.min(s.out, s["in"])
        n = n + 1
        r95, reff = r95 + s.rank95, reff + s.effective_rank
        f95, feff = f95 + s.rank95 / full, feff + s.effective_rank / full
    end
    return {rank95 = r95 / n, effective_rank = reff / n, rank95_frac = f95 / n, effective_rank_frac = feff / n}
end

function run(p)
    local rows = {}
    local function one(method, sparsity)
        local m <close> = pare.load(p.model)
        local o = {data = p.data, steps = p.steps, batch = p.batch, seq = p.seq, lr = p.lr, seed = p.seed,
                   warmup = math.max(1, p.steps // 20), log_every = math.max(1, p.steps // 10)}
        if method ~= "dense" then
            o.prune = {method = method, sparsity = sparsity, warmup = math.floor(p.prune_warmup * p.steps),
                       cooldown = math.floor(p.prune_cooldown * p.steps)}
        end
        local ft = m:finetune(o)
        local r = ranks(m)
        local info = m:info()
        local row = {method = method, sparsity = ft.sparsity or 0, retained = 1 - (ft.sparsity or 0),
                     rank95 = r.rank95, rank95_frac = r.rank95_frac, effective_rank = r.effective_rank,
                     effective_rank_frac = r.effective_rank_frac, loss = ft.final_loss,
                     params = info.params.block_linear}
        rows[#rows + 1] = row
        pare.record(string.format("%s_%.2f", method, sparsity), row)
        pare.log(string.format("[lpaf_rank] %s at sparsity %.2f: rank95 %.1f (%.3f), effective rank %.1f (%.3f)",
            method, row.sparsity, r.rank95, r.rank95_frac, r.effective_rank, r.effective_rank_frac))
    end
    if p.dense then one("dense", 0) end
    for _, method in ipairs(pipeline.split_list(p.methods)) do
        for _, s in ipairs(pipeline.split_list(p.sparsities)) do
            local v = tonumber(s)
            if not v or v <= 0 or v >= 1 then error("sparsities: '" .. s .. "' is not in (0, 1)", 0) end
            one(method, v)
        end
    end
    local columns = {
        {"method", "method"}, {"sparsity", "sparsity"}, {"block params", "params"},
        {"rank95", "rank95"}, {"rank95/full", "rank95_frac"}, {"eff. rank", "effective_rank"},
        {"eff./full", "effective_rank_frac"}, {"final loss", "loss"}}
    for _, line in ipairs(report.table(rows, columns)) do print(line) end
    -- the paper's figure: mean rank against the share of parameters retained, one line per criterion,
    -- the dense fine-tuned model as the reference line
    for _, f in ipairs{{"rank95_frac", "rank95.png", "mean rank for 95% energy / full rank"},
                       {"effective_rank_frac", "effective_rank.png", "mean effective rank / full rank"}} do
        local points = {}
        for _, r in ipairs(rows) do
            points[#points + 1] = {series = r.method, params = 100 * r.retained, value = r[f[1]]}
        end
        pare.plot_size_quality(points, {path = pare.out(f[2]), reference = "dense",
            x_label = "% of block-linear weights retained", y_label = f[3],
            title = "Rank of pruned matrices after fine-tuning"})
    end
end
