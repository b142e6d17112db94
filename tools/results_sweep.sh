#!/bin/bash
# Regenerates docs/results.md's comparison with recipes: one presets/sweep.lua run per method and
# model (s = 0.2 and 0.5; calibration 128 x 256 tokens of brown_train.txt, seed 0; perplexity on
# wiki.test.raw and ptb.test.txt under pare eval's default protocol), then `pare compare` of all of
# them as Markdown (OUT/table.md) and CSV (OUT/table.csv). Every row equals the `pare compress` run of
# tools/results.sh with the same settings (tests/test_lua.c checks the recipe and C paths agree).
# Usage: tools/results_sweep.sh [OUT]   (default build/results-sweep; finished runs are kept)
# Environment: PARE_SHARED (../shared), PARE_BIN (./pare), MODELS ("ref-llama-12m ref-gpt2-6m"),
# RATIOS (0.2,0.5).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${PARE_SHARED:-../shared}
PARE=${PARE_BIN:-./pare}
OUT=${1:-build/results-sweep}
MODELS=${MODELS:-"ref-llama-12m ref-gpt2-6m"}
RATIOS=${RATIOS:-0.2,0.5}
T=$SHARED/data/text
EVAL=$T/wikitext-2/wiki.test.raw,$T/ptb/ptb.test.txt
mkdir -p "$OUT"

sweep() { # NAME MODEL PRESET RATIOS ARGS DENSE
    local name=$1 model=$2 preset=$3 ratios=$4 args=$5 dense=$6
    [ -s "$OUT/$name/run.json" ] && grep -q '"status": "complete"' "$OUT/$name/run.json" && return 0
    echo "== $name" >&2
    "$PARE" run presets/sweep.lua --model "$SHARED/models/$model" --set preset="$preset" --set ratios="$ratios" \
        --set args="$args" --set dense="$dense" --set calib="$T/brown/brown_train.txt" --set eval="$EVAL" \
        --out "$OUT/$name" --overwrite --quiet >/dev/null
}

for model in $MODELS; do
    sweep "$model-lorap" "$model" lorap "$RATIOS" "" true
    sweep "$model-lorap-kl0" "$model" lorap "$RATIOS" "keep_least=0" false
    sweep "$model-lorap-magnitude" "$model" lorap "$RATIOS" "method=lorap-magnitude" false
    sweep "$model-svd" "$model" svd "$RATIOS" "" false
    sweep "$model-asvd" "$model" asvd "$RATIOS" "" false
    sweep "$model-global" "$model" global "$RATIOS" "" false
    # Wanda at the share of block-linear weights LoRAP actually removed
    wanda=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]
print(",".join(str(x["params"]["block_linear_removed"]) for x in r if x["method"] != "dense"))' "$OUT/$model-lorap/run.json")
    sweep "$model-wanda" "$model" wanda "$wanda" "" false
done
"$PARE" compare "$OUT"/*/ --markdown "$OUT/table.md"
"$PARE" compare "$OUT"/*/ --csv "$OUT/table.csv"
cat "$OUT/table.md"
