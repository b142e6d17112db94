#!/bin/bash
# Regenerates docs/results.md's LPAF section: ref-llama-12m adapted to TinyStories (pare finetune on
# tiny_train.txt), then presets/lpaf.lua for LPAF and each baseline at 50% and 25% of the block-linear
# parameters kept, every variant with the same fine-tuning budget (STEPS steps of BATCH x SEQ tokens of
# tiny_train.txt), perplexity on tiny_test.txt (pare eval's protocol, 256-token windows). Prints the
# table (OUT/table.md) from the run records; finished runs are kept, so an interrupted call continues.
# Usage: tools/results_lpaf.sh [OUT]   (default runs/lpaf)
# Environment: PARE_SHARED (../shared), PARE_BIN (./pare), DATA and EVAL (tiny_train.txt and
# tiny_test.txt), STEPS (100), BATCH (8), SEQ (128), BASE_STEPS (200; 0: no adaptation, every variant
# starts from ref-llama-12m), KEEPS ("0.5 0.25"), ABLATIONS (1: without mixed rank, mask-only
# weighting), SCORES (0; 1: the scores of SCORE_LIST, "sensitivity magnitude", in LPAF and alone),
# JOBS (1: runs at once after the base; give each PARE_THREADS=cores/JOBS on a larger machine),
# BASE_THREADS (the base's threads; PARE_THREADS), RUNS (only the runs of these names, e.g.
# "keep0.5-lpaf dense-ft"). The dense model fine-tuned on the same budget (dense-ft) is always run: it
# is the reference for no compression.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${PARE_SHARED:-../shared}
PARE=${PARE_BIN:-./pare}
OUT=${1:-runs/lpaf}
STEPS=${STEPS:-100}
BATCH=${BATCH:-8}
SEQ=${SEQ:-128}
BASE_STEPS=${BASE_STEPS:-200}
KEEPS=${KEEPS:-"0.5 0.25"}
ABLATIONS=${ABLATIONS:-1}
SCORES=${SCORES:-0}
SCORE_LIST=${SCORE_LIST:-"sensitivity magnitude"}
JOBS=${JOBS:-1}
T=$SHARED/data/text/tinystories
DATA=${DATA:-$T/tiny_train.txt}
EVAL=${EVAL:-$T/tiny_test.txt}
mkdir -p "$OUT"

# the adapted dense model: ref-llama-12m fine-tuned on DATA (a pare export, reloaded exactly);
# BASE_STEPS=0 starts every variant from ref-llama-12m itself (for a text it was trained on)
BASE=$SHARED/models/ref-llama-12m
if [ "$BASE_STEPS" != 0 ]; then
    if [ ! -f "$OUT/base/model/pare.json" ]; then
        echo "== base" >&2
        PARE_THREADS=${BASE_THREADS:-${PARE_THREADS:-}} "$PARE" finetune --model "$BASE" --data "$DATA" \
            --out "$OUT/base" --steps "$BASE_STEPS" --batch 8 --seq 128 --lr 5e-4 --lr-warmup 10 \
            --checkpoint-every 50 --eval "$EVAL" --format pare --overwrite
    fi
    BASE=$OUT/base/model
fi

lpaf() { # NAME KEEP VARIANT [--set k=v ...]
    local name=$1 keep=$2 variant=$3
    shift 3
    [ -n "${RUNS:-}" ] && [[ " $RUNS " != *" $name "* ]] && return 0
    [ -s "$OUT/$name/run.json" ] && grep -q '"status": "complete"' "$OUT/$name/run.json" && return 0
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    echo "== $name" >&2
    # a failed run says so in OUT/NAME.log and is left out of the table; the others go on
    "$PARE" run presets/lpaf.lua --model "$BASE" --set data="$DATA" --set eval="$EVAL" \
        --set keep="$keep" --set variant="$variant" --set steps="$STEPS" --set batch="$BATCH" --set seq="$SEQ" \
        "$@" --out "$OUT/$name" --overwrite --quiet >"$OUT/$name.log" 2>&1 || echo "!! $name failed: $OUT/$name.log" >&2 &
}

for keep in $KEEPS; do
    lpaf "keep$keep-lpaf" "$keep" lpaf
    lpaf "keep$keep-svd-ft" "$keep" svd-ft
    lpaf "keep$keep-movement" "$keep" movement
    lpaf "keep$keep-lorap-ft" "$keep" lorap-ft
    lpaf "keep$keep-auto-ft" "$keep" auto-ft
done
lpaf "dense-ft" 0.5 dense-ft
if [ "$ABLATIONS" = 1 ]; then
    for keep in $KEEPS; do
        lpaf "keep$keep-lpaf-nomix" "$keep" lpaf --set p0=0
    done
    lpaf "keep0.5-lpaf-mask" 0.5 lpaf --set weighting=mask --set compare_plain=false
fi
if [ "$SCORES" = 1 ]; then
    # the pruning score: PLATON's sensitivity and magnitude (zeroth order) on the same schedule, in LPAF
    # and alone
    for keep in $KEEPS; do
        for score in $SCORE_LIST; do
            lpaf "keep$keep-lpaf-$score" "$keep" lpaf --set prune=$score
            lpaf "keep$keep-$score" "$keep" movement --set prune=$score
        done
    done
fi
wait
"$PARE" compare "$OUT"/keep*/ "$OUT"/dense-ft/ --markdown "$OUT/compare.md" 2>/dev/null || true
# one row per run: the records LPAF keeps beside the final perplexity
python3 - "$OUT" <<'EOF' | tee "$OUT/table.md"
import glob, json, os, sys
out = sys.argv[1]
print("| run | block params kept | ppl of the pruned model (LPAF) | ppl after compression | ppl plain SVD of the sparse matrices | weighted error (plain) | ppl final | wall s |")
print("|---|---|---|---|---|---|---|---|")
def ppl_of(row):
    for m in row.get("metrics", []):
        if m.get("name") == "ppl":
            return m["value"]
for path in sorted(glob.glob(os.path.join(out, "*", "run.json"))):
    r = json.load(open(path))
    if r.get("status") != "complete":
        continue
    rows = [x for x in r["results"] if x.get("metrics")]
    last = rows[-1]
    rec = r.get("records", {})
    after = rec.get("after_factorization", rec.get("after_compression"))
    plain = rec.get("plain_svd_after_factorization")
    we, wp = rec.get("weighted_error"), rec.get("weighted_error_plain")
    kept = last["params"]["block_linear"] / last["params"]["block_linear_dense"]
    f = lambda v, d=2: ("%.*f" % (d, v)) if isinstance(v, (int, float)) else "—"
    err = "%s (%s)" % (f(we, 3), f(wp, 3)) if we is not None else "—"
    print("| %s | %.3f | %s | %s | %s | %s | %s | %.0f |" % (os.path.basename(os.path.dirname(path)), kept,
          f(rec.get("after_pruning")), f(after), f(plain), err, f(ppl_of(last)), r.get("wall_s", 0)))
EOF
