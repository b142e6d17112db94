#!/bin/bash
# Reproduces docs/results.md: every method of the comparison table on both reference models at
# s = 0.2, 0.3 and 0.5, calibration 128 x 256 tokens of brown_train.txt, perplexity on wiki.test.raw and
# ptb.test.txt under pare eval's default protocol (the one reference.json records).
# Usage: tools/results.sh [OUT_DIR]   JSON per run in OUT_DIR (default build/results), then the table.
# Environment: PARE_SHARED (../shared), PARE_BIN (./pare), MODELS ("ref-llama-12m ref-gpt2-6m"),
# JOBS (runs at once, default 1; give each PARE_THREADS cores). Runs already in OUT_DIR are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${PARE_SHARED:-../shared}
PARE=${PARE_BIN:-./pare}
OUT=${1:-build/results}
MODELS=${MODELS:-"ref-llama-12m ref-gpt2-6m"}
JOBS=${JOBS:-1}
mkdir -p "$OUT"
T=$SHARED/data/text
CALIB=$T/brown/brown_train.txt
WIKI=$T/wikitext-2/wiki.test.raw
PTB=$T/ptb/ptb.test.txt
export SHARED PARE OUT CALIB WIKI PTB

# one line per run: NAME MODEL ARGS...; a run writes OUT/NAME.json atomically
run_one() {
    set -euo pipefail
    local name=$1 model=$2
    shift 2
    [ -s "$OUT/$name.json" ] && return 0
    echo "== $name" >&2
    if [ "$1" = dense ]; then
        "$PARE" eval --model "$SHARED/models/$model" --data "$2" --json >"$OUT/$name.json.tmp" 2>/dev/null
    else
        "$PARE" compress --model "$SHARED/models/$model" --calib "$CALIB" --eval "$WIKI,$PTB" --json "$@" \
            >"$OUT/$name.json.tmp" 2>/dev/null
    fi
    mv "$OUT/$name.json.tmp" "$OUT/$name.json"
}
export -f run_one

phase1() {
    for model in $MODELS; do
        echo "$model-dense-wiki $model dense $WIKI"
        echo "$model-dense-ptb $model dense $PTB"
        for s in 0.2 0.3 0.5; do
            echo "$model-lorap-$s $model --method lorap --ratio $s"
            echo "$model-lorap-kl0-$s $model --method lorap --ratio $s --keep-least 0"
            echo "$model-svd-$s $model --method svd --ratio $s"
            echo "$model-asvd-$s $model --method asvd --ratio $s"
            echo "$model-lorap-magnitude-$s $model --method lorap-magnitude --ratio $s"
            echo "$model-global-$s $model --method global --ratio $s"
            echo "$model-auto-$s $model --method auto --ratio $s"
        done
    done
}
# Wanda at LoRAP's parameter count: the share of block-linear weights LoRAP removed
phase2() {
    for model in $MODELS; do
        for s in 0.2 0.3 0.5; do
            r=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['params']['block_linear_removed'])" \
                "$OUT/$model-lorap-$s.json")
            echo "$model-wanda-$s $model --method wanda --ratio $r"
        done
    done
}
phase1 | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
phase2 | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
python3 tools/results_table.py "$OUT"
