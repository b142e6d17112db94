#!/bin/bash
# Reproduces docs/results.md: every method of tools/results_methods.txt on both reference models at
# s = 0.2, 0.3 and 0.5, calibration 128 x 256 tokens of brown_train.txt, perplexity on wiki.test.raw and
# ptb.test.txt under pare eval's default protocol (the one reference.json records); then the wall and
# CPU time of each method's `pare compress` without evaluation (OUT/times), and the evaluation-window
# table: the `windows` methods and dense at s = 0.5 evaluated at window 128 (LoRAP's and LLM-Pruner's
# protocol) and at the longest the model allows (its max_positions), beside the default 256 (OUT/windows).
# Usage: tools/results.sh [OUT_DIR]   JSON per run in OUT_DIR (default build/results), then the tables.
# Environment: PARE_SHARED (../shared), PARE_BIN (./pare), MODELS ("ref-llama-12m ref-gpt2-6m"),
# RATIOS ("0.2 0.3 0.5"), TIME_RATIO (0.5; empty: no timing), WINDOWS ("128 max"; empty: no window
# table), WINDOW_RATIO (0.5), METHODS (keys of tools/results_methods.txt to run, e.g. "auto svdllm";
# default every method; a method another runs at, such as wanda's at=lorap, needs that one too), JOBS (runs at once, default 1; give each PARE_THREADS cores; timings are
# only comparable at JOBS=1 on an otherwise idle machine). Runs already in OUT_DIR are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${PARE_SHARED:-../shared}
PARE=${PARE_BIN:-./pare}
OUT=${1:-build/results}
MODELS=${MODELS:-"ref-llama-12m ref-gpt2-6m"}
RATIOS=${RATIOS-"0.2 0.3 0.5"}
TIME_RATIO=${TIME_RATIO-0.5}
WINDOWS=${WINDOWS-"128 max"}
WINDOW_RATIO=${WINDOW_RATIO:-0.5}
JOBS=${JOBS:-1}
mkdir -p "$OUT/times" "$OUT/windows"
T=$SHARED/data/text
CALIB=$T/brown/brown_train.txt
WIKI=$T/wikitext-2/wiki.test.raw
PTB=$T/ptb/ptb.test.txt
export SHARED PARE OUT CALIB WIKI PTB TIME_RATIO WINDOW_RATIO

# one line per run: NAME MODEL KIND ARGS...; a run writes OUT/NAME.json atomically. KIND: dense (pare eval
# ARGS), compress (with the evaluation on wiki and ptb), time (compress without evaluation: its --json
# record plus wall_s, user_s, sys_s from /usr/bin/time)
run_one() {
    set -euo pipefail
    local name=$1 model=$2 kind=$3
    shift 3
    local tmp=$OUT/$name.json.tmp
    [ -s "$OUT/$name.json" ] && return 0
    echo "== $name" >&2
    case $kind in
    dense) "$PARE" eval --model "$SHARED/models/$model" --json "$@" >"$tmp" 2>/dev/null ;;
    compress) "$PARE" compress --model "$SHARED/models/$model" --calib "$CALIB" --eval "$WIKI,$PTB" --json "$@" \
        >"$tmp" 2>/dev/null ;;
    time)
        /usr/bin/time -o "$tmp.time" -f '{"wall_s": %e, "user_s": %U, "sys_s": %S}' \
            "$PARE" compress --model "$SHARED/models/$model" --calib "$CALIB" --json "$@" >"$tmp" 2>/dev/null
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r.update(json.load(open(sys.argv[2])))
json.dump(r, open(sys.argv[1], "w"), indent=2)' "$tmp" "$tmp.time"
        rm "$tmp.time" ;;
    esac
    mv "$tmp" "$OUT/$name.json"
}
export -f run_one

methods() {
    python3 tools/results_table.py --methods |
        awk -F'|' -v want="${METHODS:-}" 'BEGIN { n = split(want, k, " "); for (i = 1; i <= n; i++) keep[k[i]] = 1 }
                                           n == 0 || ($1 in keep)'
}

# the share of block-linear weights the run OUT/NAME.json removed
removed() {
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['params']['block_linear_removed'])" "$OUT/$1.json"
}

max_window() {
    "$PARE" info --model "$SHARED/models/$1" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['config']['max_positions'])"
}

# phase 0: the methods run at s; phase 1: those run at another method's removed share (at=KEY), which
# need that method's records of phase 0
phase() {
    local want_at=$1 model s key args preset pargs at win w r
    for model in $MODELS; do
        if [ "$want_at" = 0 ]; then
            if [ -n "$RATIOS" ]; then
                echo "$model-dense-wiki $model dense --data $WIKI"
                echo "$model-dense-ptb $model dense --data $PTB"
            fi
            for w in $WINDOWS; do
                [ "$w" = max ] && w=$(max_window "$model")
                echo "windows/$model-dense-wiki-w$w $model dense --data $WIKI --window $w"
                echo "windows/$model-dense-ptb-w$w $model dense --data $PTB --window $w"
            done
        fi
        while IFS='|' read -r key args preset pargs at win; do
            if { [ -n "$at" ] && [ "$want_at" = 0 ]; } || { [ -z "$at" ] && [ "$want_at" = 1 ]; }; then continue; fi
            for s in $RATIOS; do
                r=$(ratio "$model" "$at" "$s")
                echo "$model-$key-$s $model compress $args --ratio $r"
            done
            if [ -n "$TIME_RATIO" ]; then
                r=$(ratio "$model" "$at" "$TIME_RATIO" times/)
                echo "times/$model-$key $model time $args --ratio $r"
            fi
            if [ -n "$win" ] && [ -n "$WINDOWS" ]; then
                r=$(ratio "$model" "$at" "$WINDOW_RATIO")
                for w in $WINDOWS; do
                    [ "$w" = max ] && w=$(max_window "$model")
                    echo "windows/$model-$key-$WINDOW_RATIO-w$w $model compress $args --ratio $r --window $w"
                done
            fi
        done < <(methods)
    done
}

# ratio MODEL AT S [PREFIX]: the ratio a method runs at for target s: s itself, or the share the method AT
# removed at s (in the run OUT/MODEL-AT-S, or OUT/PREFIXMODEL-AT for the timing runs)
ratio() {
    if [ -z "$2" ]; then echo "$3"; elif [ -n "${4:-}" ]; then removed "$4$1-$2"; else removed "$1-$2-$3"; fi
}

phase 0 | xargs -r -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
phase 1 | xargs -r -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
python3 tools/results_table.py "$OUT"
