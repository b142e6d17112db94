#!/usr/bin/env bash
# Issue 17's figures on one big model (docs/scale.md): the steps a user runs on a 7B-shaped checkpoint,
# each as its own pare command under a memory limit, timed by GNU time (wall time, peak RSS), with the
# nominal floating-point work of the step and its rate against OpenBLAS sgemm's, measured in the same
# run (tools/sgemm_rate.c). Run by `make bench-scale` when BENCH_SCALE_MODEL is set, or directly:
#
#   BENCH_SCALE_MODEL=DIR bash tools/bench_scale_model.sh
#
#   BENCH_SCALE_MODEL   the model folder (e.g. written by pare init --config tools/shapes/llama-7b.json)
#   BENCH_SCALE_STEPS   among: eval spectra lorap svdllm wanda magnitude (default: eval spectra lorap svdllm)
#   BENCH_SCALE_LIMIT   --memory-limit of every step (default 15G)
#   BENCH_SCALE_TOKENS  evaluation tokens, window 128 (default 1024)
#   BENCH_SCALE_CALIB   calibration text (default PARE_SHARED's Brown train), windows of 128 tokens
#   BENCH_SCALE_CALIB_SAMPLES  calibration windows (default 16)
#   BENCH_SCALE_EVAL    evaluation text (default PARE_SHARED's wiki.test.raw)
#   BENCH_SCALE_WORK    scratch folder for the exports (default /tmp), emptied of them at the end
#   BENCH_SCALE_JSON    also write the table as JSON to this file
#   BENCH_SCALE_SGEMM   a prebuilt tools/sgemm_rate (default: build/sgemm_rate, compiled when missing)
#   PARE                the pare binary (default ./pare)
#
# Nominal work (what the rate divides): a forward token costs 2 x (block-linear + head parameters)
# plus attention (4 x layers x dim x the mean context, window / 2); a plain spectrum of an m x n matrix
# (m >= n) costs its Gram product (m n^2) and the eigenvalues (4/3 n^3, the tridiagonal reduction); a
# rank-k factorization adds the eigenvectors and the factors (2 n^3 + 2 m n k, taken at k = n / 2);
# whitening adds its Cholesky factor (n^3 / 3) and the product W L (m n^2). Calibration runs the
# forward twice over its tokens (dense statistics, then the compressed block's outputs). These are
# standard operation counts, not measurements: the ratio to sgemm says how close each step gets to
# the machine's matrix-product rate.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${BENCH_SCALE_MODEL:?set BENCH_SCALE_MODEL to a model folder}
STEPS=${BENCH_SCALE_STEPS:-eval spectra lorap svdllm}
LIMIT=${BENCH_SCALE_LIMIT:-15G}
TOKENS=${BENCH_SCALE_TOKENS:-1024}
SHARED=${PARE_SHARED:-../shared}
CALIB=${BENCH_SCALE_CALIB:-$SHARED/data/text/brown/brown_train.txt}
EVAL=${BENCH_SCALE_EVAL:-$SHARED/data/text/wikitext-2/wiki.test.raw}
WORK=${BENCH_SCALE_WORK:-/tmp}/pare-bench-scale-model.$$
PARE=${PARE:-./pare}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

SGEMM=${BENCH_SCALE_SGEMM:-build/sgemm_rate}   # a prebuilt one for a machine without a compiler
if [ -z "${BENCH_SCALE_SGEMM:-}" ] && { [ ! -x "$SGEMM" ] || [ tools/sgemm_rate.c -nt "$SGEMM" ]; }; then
    mkdir -p build
    cc -O2 -I/usr/include/x86_64-linux-gnu -o "$SGEMM" tools/sgemm_rate.c -lopenblas
fi
threads=${PARE_THREADS:-$(nproc)}
OPENBLAS_NUM_THREADS=$threads "$SGEMM" > "$WORK/sgemm.json"
"$PARE" info --model "$MODEL" --memory-limit "$LIMIT" --json > "$WORK/info.json"

# timed FILE CMD...: CMD's wall seconds and peak RSS (KiB) into FILE, as GNU time's "%e %M" (through
# Python's getrusage where GNU time is not installed)
timed() {
    local file=$1
    shift
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%e %M' -o "$file" "$@"
    else
        python3 -c 'import resource, subprocess, sys, time
t = time.time()
rc = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write("%.2f %d\n" % (time.time() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)' "$file" "$@"
    fi
}

# step NAME ARGS...: runs pare ARGS under GNU time; NAME.out/.err/.time in WORK
step() {
    local name=$1
    shift
    echo "bench-scale-model: $name: pare $*" >&2
    local load0
    load0=$(cut -d' ' -f1 /proc/loadavg)
    if ! timed "$WORK/$name.time" "$PARE" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"; then
        echo "bench-scale-model: $name failed:" >&2
        tail -n 5 "$WORK/$name.err" >&2
        echo "failed" > "$WORK/$name.time"
    fi
    echo "$load0 $(cut -d' ' -f1 /proc/loadavg)" > "$WORK/$name.load"
    echo "bench-scale-model: $name: $(cat "$WORK/$name.time") (wall s, peak RSS KiB)" >&2
}

SAMPLES=${BENCH_SCALE_CALIB_SAMPLES:-16}
calib=(--calib "$CALIB" --calib-samples "$SAMPLES" --calib-len 128)
for s in $STEPS; do
    case $s in
    eval) step eval eval --model "$MODEL" --data "$EVAL" --window 128 --limit-tokens "$TOKENS" --memory-limit "$LIMIT" --json ;;
    spectra) step spectra spectra --model "$MODEL" --memory-limit "$LIMIT" --json ;;
    lorap) step lorap compress --model "$MODEL" --method lorap --ratio 0.2 "${calib[@]}" --memory-limit "$LIMIT" \
        --out "$WORK/lorap" --factor-dtype bf16 --json
        du -sb "$WORK/lorap" | cut -f1 > "$WORK/lorap.bytes"; rm -rf "$WORK/lorap" ;;
    svdllm) step svdllm compress --model "$MODEL" --method svdllm --ratio 0.2 "${calib[@]}" --memory-limit "$LIMIT" \
        --out "$WORK/svdllm" --factor-dtype bf16 --json
        du -sb "$WORK/svdllm" | cut -f1 > "$WORK/svdllm.bytes"; rm -rf "$WORK/svdllm" ;;
    magnitude) step magnitude compress --model "$MODEL" --method magnitude --ratio 0.5 --memory-limit "$LIMIT" \
        --eval "$EVAL" --window 128 --limit-tokens "$TOKENS" --json ;;
    wanda) step wanda compress --model "$MODEL" --method wanda --ratio 0.5 "${calib[@]}" --memory-limit "$LIMIT" \
        --eval "$EVAL" --window 128 --limit-tokens "$TOKENS" --json ;;
    *) echo "bench-scale-model: unknown step $s (eval spectra lorap svdllm wanda magnitude)" >&2; exit 2 ;;
    esac
done

python3 - "$WORK" "$TOKENS" "$STEPS" "${BENCH_SCALE_JSON:-}" "$MODEL" <<'EOF'
import json, os, sys
work, tokens, steps, json_out, model = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4], sys.argv[5]
info = json.load(open(os.path.join(work, "info.json")))
sgemm = json.load(open(os.path.join(work, "sgemm.json")))["sgemm_gflops"]
sh, p = info.get("shape") or info["config"], info["params"]
L, d, f = sh["layers"], sh["dim"], sh["ffn_dim"]
kv = sh["kv_heads"] * sh["head_dim"]
fwd_token = 2 * (p["block_linear"] + p["head"]) + 4 * L * d * 64
# the block matrices as (rows, cols): q, k, v, o, gate, up, down
mats = [(d, d), (kv, d), (kv, d), (d, d), (f, d), (f, d), (d, f)] * L
def gram_values(m, n):
    m, n = max(m, n), min(m, n)
    return m * n * n + 4 / 3 * n ** 3
def factors(m, n):
    m, n = max(m, n), min(m, n)
    return gram_values(m, n) + 2 * n ** 3 + m * n * n
calib_tokens = int(os.environ.get("BENCH_SCALE_CALIB_SAMPLES", "16")) * 128
work_of = {
    "eval": tokens * fwd_token,
    "spectra": sum(gram_values(m, n) for m, n in mats),
    # LoRAP: activation-weighted SVD of q, k, v, o; FFN channels by scores (negligible)
    "lorap": 2 * calib_tokens * fwd_token + sum(factors(m, n) for m, n in mats[:4] * L),
    "svdllm": calib_tokens * fwd_token + sum(factors(m, n) + min(m, n) ** 3 / 3 + m * n * min(m, n) for m, n in mats),
    "wanda": 2 * calib_tokens * fwd_token + (tokens * fwd_token),
    "magnitude": tokens * fwd_token,
}
rows = []
for s in steps:
    t = open(os.path.join(work, s + ".time")).read().split()
    if t[0] == "failed":
        rows.append({"step": s, "failed": True})
        continue
    wall, rss = float(t[0]), int(t[1]) * 1024
    load = open(os.path.join(work, s + ".load")).read().split()
    r = {"step": s, "wall_s": wall, "peak_rss_bytes": rss, "nominal_gflop": work_of[s] / 1e9,
         "gflops": work_of[s] / 1e9 / wall, "sgemm_gflops": sgemm, "load_before": float(load[0]),
         "load_after": float(load[1])}
    r["of_sgemm"] = r["gflops"] / sgemm
    try:
        out = json.load(open(os.path.join(work, s + ".out")))
        if s == "eval":
            r["perplexity"], r["weights"] = out["ppl"], out["weights"]
            r["pare_flop_per_token"] = out["flop_per_token"]
        if s in ("lorap", "svdllm", "wanda", "magnitude"):
            r["params_after"] = out["params"]["total_after"]
            r["params_before"] = out["params"]["total_before"]
    except (ValueError, KeyError, IndexError):
        pass
    b = os.path.join(work, s + ".bytes")
    if os.path.exists(b):
        r["export_bytes"] = int(open(b).read())
    rows.append(r)
print("model %s: %d layers, dim %d, ffn %d; limit %s; sgemm %.0f GFLOP/s on %s threads" % (
    model, L, d, f, info["memory"]["limit_bytes"], sgemm, os.environ.get("PARE_THREADS", os.cpu_count())))
print("%-8s %9s %14s %14s %9s %9s %12s" % ("step", "wall (s)", "peak RSS (GiB)", "nominal GFLOP", "GFLOP/s",
                                          "of sgemm", "export (GB)"))
for r in rows:
    if r.get("failed"):
        print("%-8s failed (see above)" % r["step"])
        continue
    print("%-8s %9.1f %14.2f %14.0f %9.1f %9.2f %12s" % (r["step"], r["wall_s"], r["peak_rss_bytes"] / 2**30,
          r["nominal_gflop"], r["gflops"], r["of_sgemm"],
          "%.2f" % (r["export_bytes"] / 1e9) if "export_bytes" in r else "-"))
if json_out:
    json.dump({"model": model, "info": info, "sgemm_gflops": sgemm, "steps": rows}, open(json_out, "w"), indent=1)
EOF
