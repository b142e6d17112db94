#!/bin/bash
# Regenerates docs/results.md's comparison with recipes: one presets/sweep.lua run per method of
# tools/results_methods.txt and model (s = 0.2, 0.3 and 0.5; calibration 128 x 256 tokens of
# brown_train.txt, seed 0; perplexity on wiki.test.raw and ptb.test.txt under pare eval's default
# protocol), then `pare compare` of all of them as Markdown (OUT/table.md) and CSV (OUT/table.csv). Every row equals the `pare compress` run of
# tools/results.sh with the same settings (tests/test_lua.c checks the recipe and C paths agree).
# Usage: tools/results_sweep.sh [OUT]   (default build/results-sweep; finished runs are kept)
# Environment: PARE_SHARED (../shared), PARE_BIN (./pare), MODELS ("ref-llama-12m ref-gpt2-6m"),
# RATIOS (0.2,0.3,0.5).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${PARE_SHARED:-../shared}
PARE=${PARE_BIN:-./pare}
OUT=${1:-build/results-sweep}
MODELS=${MODELS:-"ref-llama-12m ref-gpt2-6m"}
RATIOS=${RATIOS:-0.2,0.3,0.5}
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

# the share of block-linear weights each compressed row of the sweep OUT/NAME removed, comma-separated
removed() {
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]
print(",".join(str(x["params"]["block_linear_removed"]) for x in r if x["method"] != "dense"))' "$OUT/$1/run.json"
}

for model in $MODELS; do
    dense=true # the first sweep of a model evaluates it dense too
    # methods run at another's removed share (at=KEY, e.g. Wanda at LoRAP's) come after the rest
    for pass in plain at; do
        while IFS='|' read -r key _ preset pargs at _; do
            want=plain
            [ -n "$at" ] && want=at
            [ "$pass" = "$want" ] || continue
            ratios=$RATIOS
            [ -n "$at" ] && ratios=$(removed "$model-$at")
            sweep "$model-$key" "$model" "$preset" "$ratios" "$pargs" "$dense"
            dense=false
        done < <(python3 tools/results_table.py --methods)
    done
done
"$PARE" compare "$OUT"/*/ --markdown "$OUT/table.md"
"$PARE" compare "$OUT"/*/ --csv "$OUT/table.csv"
cat "$OUT/table.md"
