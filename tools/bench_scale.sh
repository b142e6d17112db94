#!/usr/bin/env bash
# make bench-scale: pare on real shapes (issue 17 §4, docs/scale.md). Steps, chosen by
# BENCH_SCALE_STEPS (words, default "init"):
#
#   init      pare init of real shapes (tools/shapes/), streamed to disk; prints the wall time, the
#             write rate and the peak RSS (GNU time's maximum resident set size) of each, against the
#             model's size.
#               BENCH_SCALE_SHAPES  the shapes (default: llama-3.2-1b, and llama-7b when the disk has room)
#   pipeline  the whole LoRAP pipeline against an independent PyTorch implementation of the same steps
#             on the same threads (docs/scale.md "TinyLlama pipeline against PyTorch"):
#             LoRAP at BENCH_PIPELINE_RATIO with SAMPLES x 256 calibration windows (calibration +
#             compression), then the evaluation of the compressed model and of the dense one over the
#             first TOKENS tokens of the evaluation text (windows of 256, batch 8). pare's side is
#             build/opt/bench_compress pipeline, torch's tools/bench_torch_compress.py lorap --eval-ids on
#             the calibration and evaluation ids pare wrote. Prints step | pare s | torch s | torch/pare,
#             tokens/s dense and compressed against the FLOP-predicted speed-up, and both perplexities.
#               BENCH_PIPELINE_MODEL      a model folder (default: none, pare init writes the shape below
#                                         under the scratch folder, in BF16, and it is deleted at the end)
#               BENCH_PIPELINE_SHAPE      tools/shapes/NAME.json for that (default tinyllama-1.1b)
#               BENCH_PIPELINE_TOKENIZER  tokenizer given to pare init (default
#                                         $PARE_SHARED/models/llama2-vocab-tiny/tokenizer.json)
#               BENCH_PIPELINE_CALIB      calibration text (default $PARE_SHARED/data/text/brown/brown_train.txt)
#               BENCH_PIPELINE_TEXT       evaluation text (default $PARE_SHARED/data/text/wikitext-2/wiki.test.raw)
#               BENCH_PIPELINE_RATIO      compression ratio (default 0.2)
#               BENCH_PIPELINE_SAMPLES    calibration windows of 256 tokens (default 128)
#               BENCH_PIPELINE_TOKENS     evaluation tokens (default 20000: 78 windows of 256)
#               BENCH_PIPELINE_ROUNDS     rounds of pare's evaluations, best kept (default 1)
#               BENCH_PIPELINE_JSON       also write the results there as JSON (default: not written)
#             PARE_MATMUL=bf16 gives pare's side the BF16 products (--matmul bf16); torch stays fp32.
#
# Common: BENCH_SCALE_DIR the scratch folder (default /tmp), emptied of what this script wrote at the
# end; PARE_BIN the pare binary (default ./pare); BENCH_COMPRESS_BIN pare's benchmark binary (default
# build/opt/bench_compress, built with make when absent); PARE_SHARED the shared models/data folder
# (default ../shared); PARE_THREADS threads of pare and torch alike (default: nproc);
# BENCH_TORCH_PY the interpreter with torch (default /usr/bin/python3, Debian's python3-torch);
# BENCH_STRICT=1 exits 1 when a target is missed (default: report only). Paths are resolved from the
# caller's directory; nothing depends on where the repository is.
set -euo pipefail
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PARE="$(abspath "${PARE_BIN:-$ROOT/pare}")"
SHARED="$(abspath "${PARE_SHARED:-$ROOT/../shared}")"
BC="$(abspath "${BENCH_COMPRESS_BIN:-$ROOT/build/opt/bench_compress}")"
P_MODEL="${BENCH_PIPELINE_MODEL:+$(abspath "$BENCH_PIPELINE_MODEL")}"
P_TOKENIZER="$(abspath "${BENCH_PIPELINE_TOKENIZER:-$SHARED/models/llama2-vocab-tiny/tokenizer.json}")"
P_CALIB="$(abspath "${BENCH_PIPELINE_CALIB:-$SHARED/data/text/brown/brown_train.txt}")"
P_TEXT="$(abspath "${BENCH_PIPELINE_TEXT:-$SHARED/data/text/wikitext-2/wiki.test.raw}")"
P_JSON="${BENCH_PIPELINE_JSON:+$(abspath "$BENCH_PIPELINE_JSON")}"
THREADS="${PARE_THREADS:-$(nproc)}"
TORCH_PY="${BENCH_TORCH_PY:-/usr/bin/python3}"
STEPS=" ${BENCH_SCALE_STEPS:-init} "
cd "$ROOT"
dir=$(abspath "${BENCH_SCALE_DIR:-/tmp}")/pare-bench-scale.$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

if [[ "$STEPS" == *" init "* ]]; then
free_gb=$(df -P -B1G "$dir" | awk 'NR == 2 { print $4 }')
shapes=${BENCH_SCALE_SHAPES:-llama-3.2-1b $([ "$free_gb" -ge 20 ] && echo llama-7b)}
printf '%-16s %8s %10s %9s %10s %14s %12s\n' shape params "disk (GB)" "time (s)" "MB/s" "peak RSS (MiB)" "fp32 slab"
for s in $shapes; do
    cfg=tools/shapes/$s.json
    params=$("$PARE" info --config "$cfg" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["params"]["total"])')
    start=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$dir/rss" "$PARE" init --config "$cfg" --out "$dir/$s" --dtype bf16 >/dev/null 2>&1
    end=$(date +%s.%N)
    bytes=$(du -sb "$dir/$s" | cut -f1)
    awk -v s="$s" -v p="$params" -v b="$bytes" -v t0="$start" -v t1="$end" -v rss="$(cat "$dir/rss")" 'BEGIN {
        t = t1 - t0; printf "%-16s %7.2fB %10.2f %9.1f %10.0f %14.1f %9.1f GiB\n", s, p / 1e9, b / 1e9, t, b / 1e6 / t,
        rss / 1024, p * 4 / 2^30 }'
    rm -rf "${dir:?}/$s"
done
fi

[[ "$STEPS" == *" pipeline "* ]] || exit 0
# --- the LoRAP pipeline against PyTorch -----------------------------------------------------------
RATIO="${BENCH_PIPELINE_RATIO:-0.2}"
SAMPLES="${BENCH_PIPELINE_SAMPLES:-128}"
TOKENS="${BENCH_PIPELINE_TOKENS:-20000}"
ROUNDS="${BENCH_PIPELINE_ROUNDS:-1}"
fail() { echo "bench-scale: error: $*" >&2; exit 1; }
for f in "$P_CALIB" "$P_TEXT"; do [ -f "$f" ] || fail "text not found: $f (set PARE_SHARED or BENCH_PIPELINE_CALIB/TEXT)"; done
if [ ! -x "$BC" ]; then
    [ -z "${BENCH_COMPRESS_BIN:-}" ] || fail "BENCH_COMPRESS_BIN is not an executable: $BC"
    make -s build/opt/bench_compress >/dev/null || fail "cannot build build/opt/bench_compress"
fi
P="$dir/pipeline"
mkdir -p "$P"
if [ -z "$P_MODEL" ]; then
    shape="${BENCH_PIPELINE_SHAPE:-tinyllama-1.1b}"
    [ -f "$P_TOKENIZER" ] || fail "tokenizer not found: $P_TOKENIZER (set BENCH_PIPELINE_TOKENIZER)"
    echo "bench-scale: pipeline: pare init of tools/shapes/$shape.json (BF16) ..."
    "$PARE" init --config "tools/shapes/$shape.json" --out "$dir/$shape" --dtype bf16 --tokenizer "$P_TOKENIZER" \
        >/dev/null 2> "$P/init.err" || { tail -n 5 "$P/init.err" >&2; fail "pare init of $shape failed"; }
    P_MODEL="$dir/$shape"
fi
[ -f "$P_MODEL/config.json" ] || fail "not a model folder: $P_MODEL"
echo "bench-scale: pipeline: $P_MODEL, LoRAP s=$RATIO on $SAMPLES x 256 windows, evaluation of $TOKENS tokens," \
     "$THREADS threads"
echo "bench-scale: pipeline: pare (build/opt/bench_compress pipeline) ..."
PARE_THREADS="$THREADS" "$BC" pipeline "$P_MODEL" "$P_CALIB" "$P_TEXT" "$RATIO" "$SAMPLES" "$TOKENS" "$P" "$ROUNDS" \
    > "$P/pare.json" || fail "bench_compress pipeline failed"
if [ -x "$TORCH_PY" ] && "$TORCH_PY" -c 'import torch' >/dev/null 2>&1; then
    echo "bench-scale: pipeline: torch (tools/bench_torch_compress.py lorap --eval-ids) ..."
    if ! OMP_NUM_THREADS="$THREADS" "$TORCH_PY" tools/bench_torch_compress.py lorap --model "$P_MODEL" \
            --ids "$P/calib_ids.bin" --samples "$SAMPLES" --ratio "$RATIO" --rounds 1 --threads "$THREADS" \
            --eval-ids "$P/eval_ids.bin" > "$P/torch.json" 2> "$P/torch.err"; then
        echo "bench-scale: warning: the torch reference failed; its columns are n/a:" >&2
        tail -n 20 "$P/torch.err" >&2
        rm -f "$P/torch.json"
    fi
else
    echo "bench-scale: PyTorch is not available to $TORCH_PY (apt-get install python3-torch); torch columns are n/a"
fi
if [ -x "$TORCH_PY" ]; then PY="$TORCH_PY"; else PY=python3; fi
"$PY" - "$P" "$P_MODEL" "$THREADS" "${BENCH_STRICT:-0}" "$P_JSON" <<'PYEOF'
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tools"))
from bench_table import print_table

pdir, model, threads, strict, out_json = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5]
RATIO_TARGET = 1.5      # torch time / pare time over the pipeline, as for the small models
FLOP_TARGET = 0.8       # pare's measured speed-up >= 80% of the FLOP-predicted one
PPL_TOL = 1e-3          # pare and torch implement the same steps: relative perplexity difference

p = json.load(open(os.path.join(pdir, "pare.json")))
try:
    t = json.load(open(os.path.join(pdir, "torch.json")))
    te = t["eval"]
except (OSError, ValueError, KeyError):
    t = te = None
f = lambda v, spec: "n/a" if v is None else format(v, spec)
missed = False

steps = [("calibration + compression (%d x %d windows, s=%g)" % (p["samples"], p["len"], p["ratio"]),
          p["compress_seconds"], t and t["seconds"]),
         ("eval dense (%d tokens, window %d)" % (p["tokens"], p["window"]), p["eval_dense_seconds"],
          te and te["dense_seconds"]),
         ("eval compressed", p["eval_comp_seconds"], te and te["comp_seconds"])]
steps.append(("total pipeline", sum(s[1] for s in steps), sum(s[2] for s in steps) if t else None))
rows, out_steps = [], []
for label, ps, ts in steps:
    ratio = ts / ps if ts else None
    ok = "n/a" if ratio is None else ("ok" if ratio >= RATIO_TARGET else "SLOW")
    missed |= ok == "SLOW"
    rows.append([label, "%.2f" % ps, f(ts, ".2f"), f(ratio, ".2f") + ("x" if ratio else ""), ok])
    out_steps.append(dict(step=label, pare_seconds=ps, torch_seconds=ts, torch_over_pare=ratio))
print()
print_table(["%s, %s threads, pare's products %s" % (os.path.basename(os.path.normpath(model)), threads,
                                                     p.get("matmul", "f32")), "pare s", "torch s",
             "torch/pare", "ok"], rows)

predicted = p["flop_dense"] / p["flop_comp"]
speed = {}
rows = []
for side, d, c in (("pare", p["dense_tok_s"], p["comp_tok_s"]),
                   ("torch", te and te["dense_tok_s"], te and te["comp_tok_s"])):
    su = c / d if d and c else None
    frac = su / predicted if su else None
    ok = "-" if side == "torch" else ("ok" if frac >= FLOP_TARGET else "SLOW")
    missed |= ok == "SLOW"
    rows.append([side, f(d, ".1f"), f(c, ".1f"), f(su, ".3f"), "%.3f" % predicted, f(frac, ".3f"), ok])
    speed[side] = dict(dense_tok_s=d, comp_tok_s=c, speedup=su, flop_predicted=predicted, measured_over_predicted=frac)
print()
print_table(["tokens/s", "dense", "compressed", "speed-up", "FLOP-predicted", "measured/predicted", "ok"], rows)

ppl = dict(pare_dense=p["ppl_dense"], pare_comp=p["ppl_comp"], torch_dense=te and te["ppl_dense"],
           torch_comp=te and te["ppl_comp"])
rel = {k: abs(p["ppl_" + k] / te["ppl_" + k] - 1) for k in ("dense", "comp")} if te else {}
same_plan = t is not None and t["ranks"] == p["ranks"] and t["kept_channels"] == p["kept_channels"]
differ = bool(te) and (max(rel.values()) > PPL_TOL or not same_plan)
missed |= differ
print()
print("targets: torch/pare >= %.1fx; pare's measured/predicted speed-up >= %.1f; perplexities agree within %.0e "
      "relative" % (RATIO_TARGET, FLOP_TARGET, PPL_TOL))
print("  perplexity dense: pare %.6f, torch %s (rel diff %s); compressed: pare %.6f, torch %s (rel diff %s)%s"
      % (p["ppl_dense"], f(ppl["torch_dense"], ".6f"), f(rel.get("dense"), ".1e"), p["ppl_comp"],
         f(ppl["torch_comp"], ".6f"), f(rel.get("comp"), ".1e"), "  DIFFER" if differ else ""))
print("  plan: %d -> %d block-linear params, %d matrices factorized, worst ||W - AB|| / ||W|| pare %.4f%s; ranks and "
      "kept FFN channels %s"
      % (p["params_before"], p["params_after"], sum(1 for k in p["ranks"] if k > 0), p["worst_rel_error"],
         "" if t is None else " torch %.4f" % t["worst_rel_error"],
         "n/a" if t is None else ("identical in pare and torch" if same_plan else "DIFFER between pare and torch")))
print("  FLOP/token (window %d): dense %.3fG, compressed %.3fG; pare's evaluations alternate dense and compressed "
      "chunk by chunk (best of %d), torch's run compressed then dense, each after a warm-up batch"
      % (p["window"], p["flop_dense"] / 1e9, p["flop_comp"] / 1e9, p["rounds"]))
if t:
    sp = t["split"]
    print("  torch calibration split: statistics forward %.2f s, factorize %.2f, channel prune %.3f, propagate %.2f"
          % (sp["stats_forward"], sp["factorize"], sp["prune"], sp["propagate"]))

if out_json:
    drop = lambda d: {k: v for k, v in d.items() if k not in ("ranks", "kept_channels")} if d else None
    res = dict(model=model, threads=int(threads), steps=out_steps, tokens_per_second=speed, perplexity=ppl,
               perplexity_rel_diff=rel, same_plan=same_plan if t else None, pare=drop(p), torch=drop(t),
               targets=dict(torch_over_pare=RATIO_TARGET, measured_over_predicted=FLOP_TARGET, ppl_rel=PPL_TOL))
    tmp = out_json + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(res, fh, indent=1)
    os.replace(tmp, out_json)
    print("  results written to %s" % out_json)
sys.exit(1 if strict and missed else 0)
PYEOF
