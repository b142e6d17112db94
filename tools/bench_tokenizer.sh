#!/usr/bin/env bash
# Tokenizer speed (issue 16 §3): encoding wiki.test.raw with Llama-3's, Qwen3's and (after
# `make tokenizer-refs`) Gemma-3's tokenizer.json, pare against Hugging Face tokenizers' npm binding
# (single-threaded) in the same run. pare's time is `pare tokenize --count` on the file minus the
# same command on an empty text (loading the tokenizer.json), best of BENCH_ROUNDS (default 3); the
# binding's is its encode call alone. ratio = pare / HF (below 1: pare is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${PARE_SHARED:-../shared}
CACHE=${PARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pare}
ROUNDS=${BENCH_ROUNDS:-3}
TEXT=$SHARED/data/text/wikitext-2/wiki.test.raw
[ -f "$TEXT" ] || { echo "bench tokenizer: skipped: $TEXT not found (PARE_SHARED)"; exit 0; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

best_seconds() { # best wall time of ROUNDS runs of "$@", in seconds
    local best=""
    for _ in $(seq "$ROUNDS"); do
        local t0 t1
        t0=$(date +%s.%N)
        "$@" > /dev/null
        t1=$(date +%s.%N)
        best=$(python3 -c "t=$t1-$t0; b='$best'; print(min(t, float(b)) if b else t)")
    done
    echo "$best"
}

printf '%-8s %8s %10s %10s %7s\n' tokenizer tokens "pare s" "HF s" ratio
for name in llama3 qwen3 gemma3; do
    json=$SHARED/tokenizers/$name/tokenizer.json
    [ "$name" = gemma3 ] && json=$CACHE/tokenizers/gemma3/tokenizer.json
    if [ ! -f "$json" ]; then echo "$name: skipped: $json not found (make tokenizer-refs)"; continue; fi
    tokens=$(./pare tokenize --tokenizer "$json" --file "$TEXT" --count)
    whole=$(best_seconds ./pare tokenize --tokenizer "$json" --file "$TEXT" --count)
    load=$(best_seconds ./pare tokenize --tokenizer "$json" --text "" --count)
    pare_s=$(python3 -c "print(f'{max($whole - $load, 0):.3f}')")
    hf_s=-
    ratio=-
    if command -v node > /dev/null && [ -d "$CACHE/node/node_modules/tokenizers" ]; then
        hf_s=$(NODE_PATH=$CACHE/node/node_modules node tools/tokenizer_reference.js "$json" "$TMP/$name" "$TEXT" |
            awk '{print $3}')
        ratio=$(python3 -c "print(f'{$pare_s / $hf_s:.2f}')")
    fi
    printf '%-8s %8s %10s %10s %7s\n' "$name" "$tokens" "$pare_s" "$hf_s" "$ratio"
done
