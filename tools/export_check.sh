#!/usr/bin/env bash
# Prepares the transformers check of issue 16: for each family fixture (tests/data/families/*), the
# hf-dense exports of `pare compress --method lorap --ratio 0.3` and `--method svdllm` (calibrated on
# the fixture's eval.txt) and the `pare eval --json` of each on that text (window 64), written into
# OUTDIR; prints the argument list for tools/check_hf_export.py, to run on the GPU machine:
#
#   tools/export_check.sh OUTDIR
#   python3 tools/check_hf_export.py $(cat OUTDIR/check_args.txt)
#
# Run from the checkout's root (uses ./pare). Paths in the argument list are relative to that root.
set -euo pipefail

fail() {
    echo "tools/export_check.sh: $*" >&2
    exit 2
}

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: tools/export_check.sh OUTDIR" >&2
    exit 2
fi
out=$1
pare=./pare
families=tests/data/families
[ -x "$pare" ] || fail "$pare not found: run make first, from the checkout's root"
[ -d "$families" ] || fail "$families not found: run from the checkout's root"
mkdir -p "$out"

args=()
for dir in "$families"/*/; do
    dir=${dir%/}
    fam=${dir##*/}
    text=$dir/eval.txt
    for method in lorap svdllm; do
        model=$out/$fam-$method
        ratio=()
        [ "$method" = lorap ] && ratio=(--ratio 0.3)
        "$pare" compress --model "$dir" --method "$method" "${ratio[@]}" --calib "$text" --calib-samples 16 \
            --calib-len 64 --out "$model" --format hf-dense --overwrite >"$model.log" 2>&1 ||
            fail "pare compress --method $method on $dir failed: $(tail -n 1 "$model.log")"
        # the json goes to a temporary name first: a failed eval leaves no partial file behind
        "$pare" eval --model "$model" --data "$text" --window 64 --json >"$model.eval.json.tmp" 2>>"$model.log" ||
            fail "pare eval of $model failed: $(tail -n 1 "$model.log")"
        mv "$model.eval.json.tmp" "$model.eval.json"
        # transformers scores the fixture's ids (eval.i32: the bytes of eval.txt, what pare's tokenizer
        # gives): Gemma's tokenizer class refuses the fixtures' byte-level tokenizer.json (no <unk>)
        args+=("$model" "$dir/eval.i32" "$model.eval.json")
    done
done
printf '%s\n' "${args[*]}" >"$out/check_args.txt"
echo "python3 tools/check_hf_export.py ${args[*]}"
