--[[ What storing the factors in BF16 or F16 costs (docs/scale.md, "Factor dtype"): the model is
compressed once, then for each factor dtype a clone is rounded to it (m:round_weights, as
`pare compress --factor-dtype` does), evaluated and exported in the pare format; one line per dtype:

    RESULT MODEL METHOD RATIO DTYPE PPL PREDICTED BYTES_ON_DISK

    pare run tools/factor_dtype.lua --model M --set method=lorap --set ratio=0.2 \
        --set calib=brown_train.txt --set eval=wiki.test.raw [--set limit=32768] --out OUT

Each clone's perplexity is what `pare eval` gives on its export (OUT/model-DTYPE), to the bit. ]]
description = "perplexity and bytes on disk of one compression with F32, BF16 and F16 factors"
params {
    method = {"lorap", "compression method (pare.methods())", type = "string"},
    ratio = {0.2, "fraction of decoder-block linear parameters to remove", min = 0.01, max = 0.95},
    calib = {nil, "calibration text (128 windows of 256 tokens, seed 0)", type = "string"},
    eval = {nil, "evaluation text", type = "string"},
    limit = {0, "evaluate the first LIMIT tokens only (0: the whole text)", min = 0},
}

function run(p)
    local m <close> = pare.load(p.model)
    m:compress{method = p.method, ratio = p.ratio, calib = p.calib, calib_samples = 128, calib_len = 256}
    for _, dtype in ipairs({"F32", "BF16", "F16"}) do
        local c <close> = m:clone()
        c:round_weights(dtype)
        local e = c:eval(p.eval, p.limit > 0 and {limit_tokens = p.limit} or {})
        local x = c:export(pare.out("model-" .. dtype), {factor_dtype = dtype})
        print(string.format("RESULT %s %s %g %s %.6f %d %d", p.model, p.method, p.ratio, dtype, e.ppl, e.predicted,
                            x.bytes))
    end
end
