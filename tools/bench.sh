#!/usr/bin/env bash
# pare benchmark (`make bench`): pare's forward pass against an independent PyTorch forward of the
# same models on the same windows, plus OpenBLAS sgemm's rate measured in the same run. This machine
# is noisy, so the references are measured here and now and the table reports ratios.
#
# PyTorch is a benchmark reference only, never a dependency of pare: without it the pare-only columns
# are still reported.
#
# Environment:
#   PARE_SHARED   shared models/data folder (default ../shared); absent: the benchmark is skipped
#   PARE_BIN      pare binary (default ./pare)
#   PARE_THREADS  threads for pare, torch and sgemm (default: nproc)
#   BENCH_TOKENS  tokens per model, from the start of wiki.test.raw (default 32768 = 128 windows)
#   BENCH_ROUNDS  rounds per model, pare and torch alternating; the best of each is kept (default 2)
#   BENCH_BATCH   windows per forward (default 8)
#   BENCH_STRICT  1: exit 1 when a target is missed (default: report only)
#   BENCH_TORCH_PY  interpreter with torch (default /usr/bin/python3, Debian's python3-torch)
#
# Compression benchmarks on ref-llama-12m (issue 3 §10), pare (build/opt/bench_compress, built by
# `make bench` from tools/bench_compress.c) against PyTorch (tools/bench_torch_compress.py):
#   1. full spectra of the 42 block matrices: pare_model_spectra_compute vs torch.linalg.svdvals (fp32)
#   2. randomized top-k vs full SVD: pare_svd_topk (defaults) vs exact; torch.svd_lowrank (same l and
#      power iterations) vs torch.linalg.svd; times and max relative error of the top-k values
#   3. LoRAP at s = BENCH_LORAP_RATIO: sequential calibration (128 x 256 windows of brown_train.txt,
#      the same windows on both sides) + compression, model loading and tokenization not timed
#   4. tokens/s dense vs compressed at s = BENCH_SPEED_RATIO (LoRAP plan), against the FLOP-predicted
#      speed-up (pare_model_flop_per_token before / after)
#   BENCH_COMPRESS      0: skip them (default 1)
#   BENCH_SVD_K         k of the top-k SVD (default 64)
#   BENCH_LORAP_RATIO   (default 0.2); BENCH_LORAP_ROUNDS rounds, pare and torch alternating (default 1)
#   BENCH_SPEED_RATIO   (default 0.5); tokens: BENCH_TOKENS; rounds: BENCH_ROUNDS
#   BENCH_CALIB         calibration text (default $PARE_SHARED/data/text/brown/brown_train.txt)
#
# Zero-shot scoring (issue 8): items/s of `pare eval --task piqa --limit N` on ref-llama-12m against the
# PyTorch reference (tests/gen_task_fixture.py --bench) scoring the very requests pare scored (pare's
# --dump-requests: every choice's input and continuation ids) with the same batching. pare's time
# includes tokenizing the items; torch's starts from the ids. Per-choice log-likelihoods must agree
# within 1e-3 and the accuracies exactly.
#   BENCH_TASKS         0: skip it (default 1)
#   BENCH_TASK_ITEMS    PIQA items, from the start of valid.jsonl (default 300)
#   BENCH_TASK_ROUNDS   rounds, pare and torch alternating; the best of each is kept (default BENCH_ROUNDS)
#
# Fine-tuning (issue 7 §8): steady tokens/s of `pare finetune` on ref-llama-12m (BENCH_FT_STEPS steps
# after the first, batch 8 x 256 tokens of wiki.test.raw, AdamW, clipping, fp32) against the PyTorch
# reference step (tools/bench_torch_train.py: the same forward with autograd, torch.optim.AdamW, one
# warm-up step), with the peak resident memory of each process.
#   BENCH_FT            0: skip it (default 1)
#   BENCH_FT_STEPS      timed steps (default 6); BENCH_FT_ROUNDS rounds (default 1)
#
# SVD routes (issue 17 §4): build/opt/bench_svd (tools/bench_svd.c), one table.
#   BENCH_SVD           0: skip it (default 1); BENCH_SVD_ROUNDS rounds, best kept (default 3)
#   PARE_BENCH_BIG      1: also the 4096x4096 and 4096x11008 shapes (minutes each)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED_IN="${PARE_SHARED:-$ROOT/../shared}"
PARE_IN="${PARE_BIN:-$ROOT/pare}"

WINDOW=256
THREADS="${PARE_THREADS:-$(nproc)}"
TOKENS="${BENCH_TOKENS:-32768}"
ROUNDS="${BENCH_ROUNDS:-2}"
BATCH="${BENCH_BATCH:-8}"
MODELS=(ref-llama-12m ref-gpt2-6m)
TORCH_PY="${BENCH_TORCH_PY:-/usr/bin/python3}"   # Debian's interpreter, where python3-torch installs

if [ ! -d "$SHARED_IN" ]; then
    echo "bench: skipped: PARE_SHARED not found ($SHARED_IN)"
    exit 0
fi
SHARED="$(cd "$SHARED_IN" && pwd)"     # relative paths are resolved from the caller's directory
DATA="$SHARED/data/text/wikitext-2/wiki.test.raw"

# Python for JSON parsing and the table: any python3 has json.
if [ -x "$TORCH_PY" ]; then PY="$TORCH_PY"; else PY="$(command -v python3 || true)"; fi
if [ -z "$PY" ]; then
    echo "bench: error: python3 is needed to parse the JSON results" >&2
    exit 1
fi

case "$PARE_IN" in
    /*) PARE="$PARE_IN" ;;
    */*) PARE="$PWD/$PARE_IN" ;;
    *) PARE="$(command -v "$PARE_IN" || echo "$PARE_IN")" ;;
esac
cd "$ROOT"
if [ ! -x "$PARE" ]; then
    echo "bench: error: pare binary not found or not executable: $PARE (run \`make\` first)" >&2
    exit 1
fi
if [ ! -f "$DATA" ]; then
    echo "bench: error: evaluation text not found: $DATA" >&2
    exit 1
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/pare-bench.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

HAVE_TORCH=0
if [ -x "$TORCH_PY" ] && "$TORCH_PY" -c 'import torch' >/dev/null 2>&1; then
    HAVE_TORCH=1
else
    echo "bench: PyTorch (the reference) is not available to $TORCH_PY; torch columns are n/a."
    echo "bench:   install it with: apt-get install python3-torch"
fi

# --- OpenBLAS sgemm reference ---------------------------------------------------------------------
mkdir -p build
if [ ! -x build/sgemm_rate ] || [ tools/sgemm_rate.c -nt build/sgemm_rate ]; then
    cc -O2 -I/usr/include/x86_64-linux-gnu -o build/sgemm_rate tools/sgemm_rate.c -lopenblas
fi
run_sgemm() {
    OPENBLAS_NUM_THREADS="$THREADS" build/sgemm_rate > "$TMP/sgemm$1.json"
}

echo "bench: window $WINDOW, batch $BATCH, threads $THREADS, first $TOKENS tokens of wiki.test.raw per model, best of $ROUNDS rounds"
run_sgemm 1

# --- models ---------------------------------------------------------------------------------------
ran=()
for m in "${MODELS[@]}"; do
    dir="$SHARED/models/$m"
    if [ ! -f "$dir/config.json" ]; then
        echo "bench: skipped $m: $dir not found"
        continue
    fi
    torch_ok="$HAVE_TORCH"
    for r in $(seq 1 "$ROUNDS"); do     # alternate pare and torch; the best round of each is kept
        echo "bench: $m: pare (round $r/$ROUNDS) ..."
        rc=0
        OPENBLAS_NUM_THREADS="$THREADS" "$PARE" eval --model "$dir" --data "$DATA" --window "$WINDOW" \
            --batch "$BATCH" --limit-tokens "$TOKENS" --json > "$TMP/$m.pare.$r.out" 2> "$TMP/$m.pare.err" || rc=$?
        if [ "$rc" -ne 0 ]; then
            echo "bench: error: pare eval failed on $m (exit $rc):" >&2
            tail -n 20 "$TMP/$m.pare.err" >&2
            exit 1
        fi
        if [ "$torch_ok" = 1 ]; then
            echo "bench: $m: torch (round $r/$ROUNDS) ..."
            if ! OMP_NUM_THREADS="$THREADS" "$TORCH_PY" tools/bench_torch.py --model "$dir" \
                    --ids "$dir/reference_ids/wiki.test.raw.i32" --window "$WINDOW" --batch "$BATCH" \
                    --threads "$THREADS" --limit-tokens "$TOKENS" > "$TMP/$m.torch.$r.out" 2> "$TMP/$m.torch.err"; then
                echo "bench: warning: torch reference failed on $m; its columns are n/a:" >&2
                tail -n 20 "$TMP/$m.torch.err" >&2
                rm -f "$TMP/$m.torch."*.out
                torch_ok=0
            fi
        fi
    done
    ran+=("$m")
done
run_sgemm 2     # sgemm again after the models: the best of the two brackets the run

if [ "${#ran[@]}" -eq 0 ]; then
    echo "bench: skipped: no reference model found under $SHARED/models"
    exit 0
fi

# --- compression benchmarks (ref-llama-12m) -------------------------------------------------------
COMPRESS="${BENCH_COMPRESS:-1}"
CMODEL="$SHARED/models/ref-llama-12m"
CALIB="${BENCH_CALIB:-$SHARED/data/text/brown/brown_train.txt}"
SVD_K="${BENCH_SVD_K:-64}"
LORAP_RATIO="${BENCH_LORAP_RATIO:-0.2}"
LORAP_ROUNDS="${BENCH_LORAP_ROUNDS:-1}"
SPEED_RATIO="${BENCH_SPEED_RATIO:-0.5}"
BC="$ROOT/build/opt/bench_compress"
TPC=(env OMP_NUM_THREADS="$THREADS" "$TORCH_PY" tools/bench_torch_compress.py)
torch_c="$HAVE_TORCH"
# A torch step that fails leaves its column n/a (with the reason) instead of stopping the benchmark.
run_torch_c() {
    local out="$1"; shift
    if [ "$torch_c" = 1 ] && ! "${TPC[@]}" "$@" --model "$CMODEL" --threads "$THREADS" > "$out" 2> "$out.err"; then
        echo "bench: warning: torch $1 failed; its column is n/a:" >&2
        tail -n 20 "$out.err" >&2
        rm -f "$out"
    fi
}
if [ "$COMPRESS" = 1 ] && [ ! -f "$CMODEL/config.json" ]; then
    echo "bench: compression benchmarks skipped: $CMODEL not found"
    COMPRESS=0
fi
if [ "$COMPRESS" = 1 ] && { [ ! -x "$BC" ] || [ tools/bench_compress.c -nt "$BC" ]; }; then
    make -s -C "$ROOT" build/opt/bench_compress >/dev/null || { echo "bench: error: cannot build $BC" >&2; exit 1; }
fi
if [ "$COMPRESS" = 1 ]; then
    export OPENBLAS_NUM_THREADS="$THREADS"
    C="$TMP/c"
    mkdir -p "$C"
    for r in $(seq 1 "$ROUNDS"); do
        echo "bench: compression 1/4 full spectra (round $r/$ROUNDS) ..."
        "$BC" spectra "$CMODEL" 3 "$C/values.bin" > "$C/spectra.pare.$r.json"
        run_torch_c "$C/spectra.torch.$r.json" spectra --rounds 3 --pare-values "$C/values.bin"
    done
    for r in $(seq 1 "$ROUNDS"); do
        echo "bench: compression 2/4 randomized top-$SVD_K vs full SVD (round $r/$ROUNDS) ..."
        "$BC" svd "$CMODEL" "$SVD_K" 1 "$C/iters.txt" > "$C/svd.pare.$r.json"
        run_torch_c "$C/svd.torch.$r.json" svd --rounds 1 --k "$SVD_K" --iters "$C/iters.txt"
    done
    if [ -f "$CALIB" ]; then
        for r in $(seq 1 "$LORAP_ROUNDS"); do
            echo "bench: compression 3/4 LoRAP s=$LORAP_RATIO calibration + compression (round $r/$LORAP_ROUNDS) ..."
            "$BC" lorap "$CMODEL" "$CALIB" "$LORAP_RATIO" 1 "$C/calib_ids.bin" > "$C/lorap.pare.$r.json"
            run_torch_c "$C/lorap.torch.$r.json" lorap --rounds 1 --ids "$C/calib_ids.bin" --ratio "$LORAP_RATIO"
        done
        echo "bench: compression 3/4 auto's sensitivity pass and budget solves on the same windows ..."
        "$BC" auto "$CMODEL" "$C/calib_ids.bin" 1 > "$C/auto.pare.1.json"
    else
        echo "bench: compression 3/4 skipped: calibration text $CALIB not found"
    fi
    echo "bench: compression 4/4 tokens/s dense vs s=$SPEED_RATIO ..."
    "$BC" speed "$CMODEL" "$CMODEL/reference_ids/wiki.test.raw.i32" "$TOKENS" "$SPEED_RATIO" "$ROUNDS" > "$C/speed.json"
    echo "bench: compression 4/4 BF16 products (--matmul bf16) against sgemm, and pare eval in both ..."
    "$BC" matmul "$CMODEL" "$CMODEL/reference_ids/wiki.test.raw.i32" "$TOKENS" "$ROUNDS" > "$C/matmul.json"
fi

# --- zero-shot scoring (PIQA, ref-llama-12m) ------------------------------------------------------
TASKS_ON="${BENCH_TASKS:-1}"
TASK_ITEMS="${BENCH_TASK_ITEMS:-300}"
TASK_ROUNDS="${BENCH_TASK_ROUNDS:-$ROUNDS}"
TMODEL="$SHARED/models/ref-llama-12m"
TDATA="$SHARED/data/tasks/piqa"
if [ "$TASKS_ON" = 1 ] && { [ ! -f "$TMODEL/config.json" ] || [ ! -f "$TDATA/valid.jsonl" ]; }; then
    echo "bench: zero-shot benchmark skipped: $TMODEL or $TDATA not found"
    TASKS_ON=0
fi
if [ "$TASKS_ON" = 1 ]; then
    TK="$TMP/t"
    mkdir -p "$TK"
    torch_t="$HAVE_TORCH"
    for r in $(seq 1 "$TASK_ROUNDS"); do
        echo "bench: zero-shot PIQA, first $TASK_ITEMS items: pare (round $r/$TASK_ROUNDS) ..."
        dump=()
        [ "$r" = 1 ] && dump=(--dump-requests "$TK/requests.jsonl")
        if ! OPENBLAS_NUM_THREADS="$THREADS" "$PARE" eval --model "$TMODEL" --task piqa --task-data "$TDATA" \
                --limit "$TASK_ITEMS" --json "${dump[@]}" > "$TK/pare.$r.json" 2> "$TK/pare.err"; then
            echo "bench: error: pare eval --task piqa failed:" >&2
            tail -n 20 "$TK/pare.err" >&2
            exit 1
        fi
        if [ "$torch_t" = 1 ]; then
            echo "bench: zero-shot PIQA: torch (round $r/$TASK_ROUNDS) ..."
            if ! OMP_NUM_THREADS="$THREADS" "$TORCH_PY" tests/gen_task_fixture.py --bench --requests "$TK/requests.jsonl" \
                    --model "$TMODEL" --threads "$THREADS" > "$TK/torch.$r.json" 2> "$TK/torch.err"; then
                echo "bench: warning: torch zero-shot reference failed; its column is n/a:" >&2
                tail -n 20 "$TK/torch.err" >&2
                rm -f "$TK/torch."*.json
                torch_t=0
            fi
        fi
    done
fi

# --- fine-tuning (ref-llama-12m) ------------------------------------------------------------------
FT_ON="${BENCH_FT:-1}"
FT_STEPS="${BENCH_FT_STEPS:-6}"
FT_ROUNDS="${BENCH_FT_ROUNDS:-1}"
FMODEL="$SHARED/models/ref-llama-12m"
if [ "$FT_ON" = 1 ] && [ ! -f "$FMODEL/config.json" ]; then
    echo "bench: fine-tuning benchmark skipped: $FMODEL not found"
    FT_ON=0
fi
if [ "$FT_ON" = 1 ]; then
    FT="$TMP/ft"
    mkdir -p "$FT"
    torch_f="$HAVE_TORCH"
    for r in $(seq 1 "$FT_ROUNDS"); do
        echo "bench: fine-tuning ref-llama-12m, $FT_STEPS steps of 8 x 256: pare (round $r/$FT_ROUNDS) ..."
        if ! OPENBLAS_NUM_THREADS="$THREADS" "$PARE" finetune --model "$FMODEL" --data "$DATA" --out "$FT/run$r" \
                --steps $((FT_STEPS + 1)) --batch 8 --seq 256 --checkpoint-every 0 --format pare --json \
                > "$FT/pare.$r.json" 2> "$FT/pare.err"; then
            echo "bench: error: pare finetune failed:" >&2
            tail -n 20 "$FT/pare.err" >&2
            exit 1
        fi
        rm -rf "$FT/run$r"
        if [ "$torch_f" = 1 ]; then
            echo "bench: fine-tuning ref-llama-12m: torch (round $r/$FT_ROUNDS) ..."
            if ! OMP_NUM_THREADS="$THREADS" "$TORCH_PY" tools/bench_torch_train.py --model "$FMODEL" \
                    --ids "$FMODEL/reference_ids/wiki.test.raw.i32" --steps "$FT_STEPS" --batch 8 --seq 256 \
                    --threads "$THREADS" > "$FT/torch.$r.json" 2> "$FT/torch.err"; then
                echo "bench: warning: torch fine-tuning reference failed; its column is n/a:" >&2
                tail -n 20 "$FT/torch.err" >&2
                rm -f "$FT/torch."*.json
                torch_f=0
            fi
        fi
    done
fi

# --- table ----------------------------------------------------------------------------------------
rc_fwd=0
"$PY" - "$TMP" "$HAVE_TORCH" "${BENCH_STRICT:-0}" "${ran[@]}" <<'PYEOF' || rc_fwd=$?
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tools"))  # bench.sh runs from the repository root
from bench_table import print_table

tmp, have_torch, strict, models = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4:]
MIB = 1024.0 * 1024.0
RATIO_TARGET = 1.5
PPL_TOL = 1e-3   # pare and torch see the same windows: their ppl must agree within 0.1%

def load(path, what):
    """One JSON object from a program's stdout: the whole text, else its last line starting with '{'."""
    try:
        text = open(path).read()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        for line in reversed(text.splitlines()):
            if line.lstrip().startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    break
    sys.stderr.write("bench: error: no JSON object in %s output:\n%s\n" % (what, text[-2000:]))
    return None

def best(model, side, what):
    """The round with the highest tokens_per_second among $TMP/<model>.<side>.<r>.out (None if none)."""
    runs = []
    for name in sorted(os.listdir(tmp)):
        if name.startswith(model + "." + side + ".") and name.endswith(".out"):
            d = load(os.path.join(tmp, name), what)
            if d is None:
                return None
            runs.append(d)
    return max(runs, key=lambda d: num(d, "tokens_per_second") or 0.0) if runs else None

def num(d, k):
    v = d.get(k) if d else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)

rates = [num(load(os.path.join(tmp, "sgemm%d.json" % i), "sgemm_rate"), "sgemm_gflops") for i in (1, 2)]
rates = [r for r in rates if r is not None]
sgemm = max(rates) if rates else None

need = ("tokens", "windows", "predicted", "ppl", "forward_seconds", "tokens_per_second", "flop_per_token",
        "peak_rss_bytes", "weight_bytes_fp32", "activation_bytes", "batch", "threads")
cols = ["model", "pare tok/s", "torch tok/s", "ratio", "pare GFLOP/s", "sgemm GFLOP/s", "%sgemm",
        "pare peak RSS MiB", "RSS target MiB", "ok"]
rows, notes, failed, missed = [], [], False, False
for m in models:
    p = best(m, "pare", "pare eval")
    if p is None:
        failed = True
        continue
    lack = [k for k in need if k not in p]
    if lack:
        notes.append("%s: pare's JSON lacks %s" % (m, ", ".join(lack)))
    if num(p, "tokens_per_second") is None:
        failed = True
    t = best(m, "torch", "bench_torch") if have_torch else None

    ptok, ttok = num(p, "tokens_per_second"), num(t, "tokens_per_second")
    ratio = ptok / ttok if ptok and ttok else None
    fpt = num(p, "flop_per_token")
    gflops = fpt * ptok / 1e9 if fpt and ptok else None
    pct = 100.0 * gflops / sgemm if gflops and sgemm else None
    rss = num(p, "peak_rss_bytes")
    wb, ab = num(p, "weight_bytes_fp32"), num(p, "activation_bytes")
    target = 2 * wb + ab if wb is not None and ab is not None else None

    bad = []
    if ratio is not None and ratio < RATIO_TARGET:
        bad.append("SLOW")
    if rss is not None and target is not None and rss > target:
        bad.append("RSS")
    pppl, tppl = num(p, "ppl"), num(t, "ppl")
    if t is not None and p.get("windows") != t.get("windows"):
        bad.append("WINDOWS")
        notes.append("%s: pare evaluated %s windows, torch %s: not the same work" %
                     (m, p.get("windows"), t.get("windows")))
    elif pppl is not None and tppl is not None and abs(pppl - tppl) > PPL_TOL * tppl:
        bad.append("PPL")
    missed |= bool(bad)
    if not bad and (rss is None or target is None):
        bad.append("?")
    elif not bad and ratio is None:
        bad.append("ok*")   # torch n/a: only the RSS target could be checked
    rows.append([m, fmt(ptok, ".0f"), fmt(ttok, ".0f"), "n/a" if ratio is None else "%.2fx" % ratio,
                 fmt(gflops, ".1f"), fmt(sgemm, ".1f"), "n/a" if pct is None else "%.0f%%" % pct,
                 fmt(rss / MIB if rss is not None else None, ".1f"),
                 fmt(target / MIB if target is not None else None, ".1f"),
                 "ok" if not bad else ",".join(bad)])
    if t is None:
        notes.append("%s: windows pare %s; ppl pare %s; torch n/a" %
                     (m, p.get("windows", "n/a"), fmt(num(p, "ppl"), ".4f")))
        continue

    tfpt = num(t, "flop_per_token")
    tg = tfpt * ttok / 1e9 if tfpt and ttok else None
    notes.append("%s: windows pare %s / torch %s; ppl pare %s / torch %s; torch %s GFLOP/s, "
                 "torch peak RSS %s MiB (incl. the Python/torch runtime)" %
                 (m, p.get("windows", "n/a"), t.get("windows", "n/a"), fmt(pppl, ".4f"),
                  fmt(tppl, ".4f"), fmt(tg, ".1f"),
                  fmt(num(t, "peak_rss_bytes") / MIB if num(t, "peak_rss_bytes") else None, ".0f")))

if rows:
    print()
    print_table(cols, rows)
    print()
    print("targets: ratio pare/torch >= %.1fx; peak RSS <= 2 x fp32 weight bytes + one batch of activations;"
          " ppl pare = ppl torch within %.1f%%" % (RATIO_TARGET, 100 * PPL_TOL))
    kernel = (load(os.path.join(tmp, "sgemm1.json"), "sgemm_rate") or {}).get("kernel", "?")
    print("OpenBLAS kernel: %s (OPENBLAS_CORETYPE=%s)" % (kernel, os.environ.get("OPENBLAS_CORETYPE", "unset")))
    print("GFLOP/s = pare's flop_per_token x tokens/s; sgemm = best OpenBLAS cblas_sgemm rate "
          "(forward-like shapes, same threads) of two runs bracketing the models")
    print("ok column: SLOW ratio < target, RSS over target, PPL/WINDOWS pare and torch disagree, "
          "? n/a, ok* RSS ok but no torch reference")
    if not have_torch:
        print("PyTorch reference not installed: apt-get install python3-torch (for /usr/bin/python3)")
    for n in notes:
        print("  " + n)
sys.exit(1 if failed else (1 if strict and missed else 0))
PYEOF

# --- compression table ----------------------------------------------------------------------------
rc_c=0
if [ "$COMPRESS" = 1 ]; then
"$PY" - "$TMP/c" "${BENCH_STRICT:-0}" "$THREADS" "$SVD_K" "$LORAP_RATIO" "$SPEED_RATIO" <<'PYEOF' || rc_c=$?
import glob, json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tools"))
from bench_table import print_table

cdir, strict, threads, K, lorap_s, speed_s = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4], \
    sys.argv[5], sys.argv[6]
SPEED_TARGET = 1.0      # pare at least as fast as torch on steps 1-3
FLOP_TARGET = 0.8       # step 4: measured speed-up >= 80% of the FLOP-predicted one

def runs(step, side):
    out = []
    for path in sorted(glob.glob(os.path.join(cdir, "%s.%s.*.json" % (step, side)))):
        try:
            out.append(json.load(open(path)))
        except (OSError, ValueError):
            sys.stderr.write("bench: error: no JSON in %s\n" % path)
    return out

def best(step, side, key):
    """(best time over rounds, the run that gave it)"""
    rs = [r for r in runs(step, side) if isinstance(r.get(key), (int, float))]
    if not rs:
        return None, None
    r = min(rs, key=lambda d: d[key])
    return r[key], r

def f(v, spec):
    return "n/a" if v is None else format(v, spec)

rows, notes, missed, failed = [], [], False, False

def row(label, p, t, target=SPEED_TARGET):
    global missed, failed
    ratio = t / p if p and t else None
    ok = "n/a" if ratio is None else ("ok" if ratio >= target else "SLOW")
    if p is None:
        failed = True
    missed |= ok == "SLOW"
    rows.append([label, f(p, ".3f"), f(t, ".3f"), "n/a" if ratio is None else "%.2fx" % ratio, ok])

# 1. spectra
p, pr = best("spectra", "pare", "seconds")
t, tr = best("spectra", "torch", "seconds")
row("1 full spectra, %s matrices (%s values)" % ((pr or {}).get("matrices", "?"), (pr or {}).get("values", "?")), p, t)
if tr and "max_rel_diff_vs_pare" in tr:
    notes.append("1: pare = double Gram + dsyevd (its default), matrices over %s threads; torch = svdvals fp32. "
                 "pare vs torch values: max rel diff %.1e over s_i >= 1e-3 s_1, max |diff| / s_1 %.1e; against a "
                 "float64 SVD (s_i >= 1e-3 s_1): pare %.1e, torch %.1e"
                 % (threads, tr["max_rel_diff_vs_pare"], tr["max_abs_diff_over_s1_vs_pare"],
                    tr.get("pare_rel_err_vs_f64", float("nan")), tr.get("torch_rel_err_vs_f64", float("nan"))))

# 2. randomized vs full SVD
p, pr = best("svd", "pare", "rand_seconds")
t, tr = best("svd", "torch", "rand_seconds")
pe, _ = best("svd", "pare", "exact_seconds")
te, _ = best("svd", "torch", "exact_seconds")
row("2 randomized top-%s SVD (U, s, V)" % K, p, t)
row("  full SVD (U, s, V), exact", pe, te)
if pr:
    notes.append("2: l = k + p = %d..%d columns, power iterations %d..%d (mean %.2f, pare's adaptive default; torch "
                 "svd_lowrank gets the same l and q per matrix). Max rel error of the top-%s values vs full SVD: "
                 "pare %s, torch %s. Randomized / full time: pare %s, torch %s"
                 % (pr["l_min"], pr["l_max"], pr["q_min"], pr["q_max"], pr["q_mean"], K, f(pr.get("max_rel_err"), ".1e"),
                    f(min(r["max_rel_err"] for r in runs("svd", "torch")) if tr else None, ".1e"),
                    f(p / pe if p and pe else None, ".2f"), f(t / te if t and te else None, ".2f")))

# 3. LoRAP
p, pr = best("lorap", "pare", "seconds")
t, tr = best("lorap", "torch", "seconds")
row("3 LoRAP s=%s: calibration + compression" % lorap_s, p, t)
if pr:
    sp = pr["split"]
    notes.append("3: pare split (instrumented round, %.2f s): statistics forward %.2f, factorize %.2f, channel prune %.3f, "
                 "propagate %.2f; tokenizing the calibration text (%d tokens, not timed above) %.2f s"
                 % (sp["total"], sp["stats_forward"], sp["factorize"], sp["prune"], sp["propagate"],
                    pr["calib_tokens"], pr["tokenize_seconds"]))
a, ar = best("auto", "pare", "seconds")
if ar:
    sp = ar.get("split", {})
    notes.append("3: method auto's sensitivity pass (calibration with Gram matrices %.2f s, whitened spectra %.2f s, "
                 "%d %s probes of %d tokens %.2f s) %.2f s = %s x pare's LoRAP pipeline; one budget solve %.2f ms "
                 "(mean of %d)"
                 % (sp.get("calibrate", 0), sp.get("spectra", 0), ar["probe_evals"], ar.get("sensitivity", "?"),
                    ar["probe_tokens"], sp.get("sensitivity", 0), a, f(a / p if p else None, ".2f"), ar["solve_ms"],
                    ar["solves"]))
if tr:
    sp = tr["split"]
    notes.append("3: torch split: statistics forward %.2f, factorize %.2f, channel prune %.3f, propagate %.2f"
                 % (sp["stats_forward"], sp["factorize"], sp["prune"], sp["propagate"]))
if pr and tr:
    same_ranks = pr["ranks"] == tr["ranks"]
    kp, kt = pr["kept_channels"], tr["kept_channels"]
    agree = sum(len(set(a) & set(b)) for a, b in zip(kp, kt))
    total = sum(len(a) for a in kp)
    notes.append("3: same plan both sides: ranks %s (%d factorized), kept FFN channels %d/%d identical, worst "
                 "||W - AB|| / ||W|| pare %.4f torch %.4f"
                 % ("identical" if same_ranks else "DIFFER", sum(1 for k in pr["ranks"] if k > 0), agree, total,
                    pr["worst_rel_error"], tr["worst_rel_error"]))
    if not same_ranks:
        missed = True

if rows:
    cols = ["compression, ref-llama-12m, %s threads" % threads, "pare s", "torch s", "torch/pare", "ok"]
    print()
    print_table(cols, rows)
    print()
    print("targets: torch/pare (pare's speed relative to torch, same run) >= %.1fx on 1-3; best of the rounds" %
          SPEED_TARGET)
    for n in notes:
        print("  " + n)

# 4. speed
try:
    sd = json.load(open(os.path.join(cdir, "speed.json")))
except (OSError, ValueError):
    sd = None
    failed = True
if sd:
    pred = sd["flop_dense"] / sd["flop_comp"]
    print()
    print("4 ref-llama-12m compressed at s=%s (LoRAP plan: %d -> %d block-linear params), %d tokens, %s threads"
          % (speed_s, sd["params_before"], sd["params_after"], sd["tokens"], sd["threads"]))
    hdr = ["", "dense tok/s", "compressed tok/s", "speed-up", "FLOP-predicted", "measured/predicted", "ok"]
    lines = []
    for label, d, c, target in (("pare eval (perplexity)", sd["dense_tok_s"], sd["comp_tok_s"], True),
                                ("forward only", sd["dense_fwd_tok_s"], sd["comp_fwd_tok_s"], False)):
        su = c / d
        ok = ("ok" if su / pred >= FLOP_TARGET else "SLOW") if target else "-"
        missed |= ok == "SLOW"
        lines.append([label, "%.0f" % d, "%.0f" % c, "%.2fx" % su, "%.2fx" % pred, "%.2f" % (su / pred), ok])
    print_table(hdr, lines)
    print()
    print("target: measured/predicted >= %.1f (eval line). FLOP/token (window 256): dense %.2fM, compressed %.2fM"
          % (FLOP_TARGET, sd["flop_dense"] / 1e6, sd["flop_comp"] / 1e6))
    print("  sanity: perplexity dense %.4f, compressed %.4f (plain SVD + magnitude channels, no calibration: shapes "
          "only, not a quality figure)" % (sd["ppl_dense"], sd["ppl_comp"]))
    s = sd["split"]
    for name in ("dense", "comp"):
        x = s[name]
        other = x["blocks"] - x["linears"]
        notes4 = ("  where the time goes, %s (first %d tokens): blocks %.2f s = linears %.2f s (%.1f GFLOP/s) + "
                  "attention/norms/activations %.2f s; head %.2f s"
                  % ("dense     " if name == "dense" else "compressed", sd["split_tokens"], x["blocks"],
                     x["linears"], x["linear_flop"] / x["linears"] / 1e9, other, x["head"]))
        print(notes4)

# 5. BF16 products (reported, no target: an option, not the default)
try:
    mm = json.load(open(os.path.join(cdir, "matmul.json")))
except (OSError, ValueError):
    mm = None
if mm and not mm.get("bf16_supported"):
    print()
    print("5 BF16 products: this CPU has no AVX512-BF16 (--matmul bf16 is refused here)")
elif mm:
    print()
    print("5 BF16 products (--matmul bf16) against sgemm: C[%d, N] = A W^T, %s threads, packing included"
          % (mm["rows"], mm["threads"]))
    print_table(["N x K", "sgemm GFLOP/s", "bf16 GFLOP/s", "bf16/sgemm", "relative RMS difference"],
                [["%d x %d" % (x["n"], x["k"]), "%.0f" % x["sgemm_gflops"], "%.0f" % x["bf16_gflops"],
                  "%.2fx" % (x["bf16_gflops"] / x["sgemm_gflops"]), "%.2g" % x["rel_rms"]] for x in mm["shapes"]])
    print("  pare eval of %d tokens of %s: fp32 %.2f s, bf16 %.2f s (%.2fx); perplexity %.6f / %.6f (%+.2g relative)"
          % (mm["tokens"], os.path.basename(mm["model"]), mm["eval_f32_s"], mm["eval_bf16_s"],
             mm["eval_f32_s"] / mm["eval_bf16_s"], mm["ppl_f32"], mm["ppl_bf16"], mm["ppl_bf16"] / mm["ppl_f32"] - 1))
sys.exit(1 if failed else (1 if strict and missed else 0))
PYEOF
fi

# --- zero-shot table ------------------------------------------------------------------------------
rc_t=0
if [ "$TASKS_ON" = 1 ]; then
"$PY" - "$TMP/t" "${BENCH_STRICT:-0}" "$THREADS" <<'PYEOF' || rc_t=$?
import glob, json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tools"))
from bench_table import print_table

tdir, strict, threads = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
RATIO_TARGET = 1.5
LL_TOL = 1e-3

def best(side):
    rs = []
    for path in sorted(glob.glob(os.path.join(tdir, side + ".*.json"))):
        try:
            rs.append(json.load(open(path)))
        except (OSError, ValueError):
            sys.stderr.write("bench: error: no JSON in %s\n" % path)
    return max(rs, key=lambda d: d["items_per_second"]) if rs else None

p, t = best("pare"), best("torch")
if p is None:
    sys.exit(1)
ratio = p["items_per_second"] / t["items_per_second"] if t else None
bad = []
if ratio is not None and ratio < RATIO_TARGET:
    bad.append("SLOW")
hits = lambda d, k: round(d[k] * d["items"])   # pare prints 10 significant digits: compare counts
if t and (t["max_abs_diff_vs_pare"] > LL_TOL or hits(t, "acc") != hits(p, "acc") or hits(t, "acc_norm") != hits(p, "acc_norm")):
    bad.append("DIFFER")
print()
print_table(["zero-shot, ref-llama-12m, %s threads" % threads, "pare items/s", "torch items/s", "ratio", "ok"],
            [["PIQA, first %d items (%d choices)" % (p["items"], p["requests"]), "%.1f" % p["items_per_second"],
              "n/a" if not t else "%.1f" % t["items_per_second"], "n/a" if ratio is None else "%.2fx" % ratio,
              ",".join(bad) or ("ok" if t else "ok*")]])
print()
print("target: pare/torch >= %.1fx, best of the rounds; pare's time includes tokenizing, torch scores pare's token ids"
      % RATIO_TARGET)
print("  pare: %d sequences (%d tokens, %d with padding) in %d forwards, %.2f s (tokenize %.2f s); acc %.4f acc_norm %.4f"
      % (p["sequences"], p["tokens"], p["padded_tokens"], p["forwards"], p["seconds"], p["tokenize_seconds"],
         p["acc"], p["acc_norm"]))
if t:
    print("  torch %s: %.2f s; acc %.4f acc_norm %.4f; max |ll pare - ll torch| %.1e (tolerance %.0e)"
          % (t["torch"], t["seconds"], t["acc"], t["acc_norm"], t["max_abs_diff_vs_pare"], LL_TOL))
else:
    print("  torch n/a (ok* = not compared)")
sys.exit(1 if (strict and bad) else 0)
PYEOF
fi
# --- fine-tuning table ----------------------------------------------------------------------------
rc_f=0
if [ "$FT_ON" = 1 ]; then
"$PY" - "$TMP/ft" "${BENCH_STRICT:-0}" "$THREADS" <<'PYEOF' || rc_f=$?
import glob, json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tools"))
from bench_table import print_table

fdir, strict, threads = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
RATIO_TARGET = 1.0

def best(side, key):
    rs = []
    for path in sorted(glob.glob(os.path.join(fdir, side + ".*.json"))):
        try:
            rs.append(json.load(open(path)))
        except (OSError, ValueError):
            sys.stderr.write("bench: error: no JSON in %s\n" % path)
    return max(rs, key=lambda d: d[key]) if rs else None

p, t = best("pare", "steady_tokens_per_second"), best("torch", "tokens_per_second")
if p is None:
    sys.exit(1)
ptps = p["steady_tokens_per_second"]
ratio = ptps / t["tokens_per_second"] if t else None
slow = ratio is not None and ratio < RATIO_TARGET
gib = lambda b: "%.2f" % (b / 2**30)
print()
print_table(["fine-tuning, ref-llama-12m, %s threads" % threads, "pare tok/s", "torch tok/s", "ratio",
             "pare peak GiB", "torch peak GiB", "ok"],
            [["batch 8 x 256, AdamW, clip 1, fp32", "%.0f" % ptps, "n/a" if not t else "%.0f" % t["tokens_per_second"],
              "n/a" if ratio is None else "%.2fx" % ratio, gib(p["peak_rss_bytes"]),
              "n/a" if not t else gib(t["peak_rss_bytes"]), "SLOW" if slow else ("ok" if t else "ok*")]])
print()
print("target: pare/torch >= %.1fx, steady steps (pare: every step after its first; torch: after a warm-up step)"
      % RATIO_TARGET)
print("  pare: %d steps, final loss %.4f; peak RSS includes the model, gradients, AdamW moments and activations"
      % (p["steps"], p["final_loss"]))
if t:
    print("  torch %s: %d timed steps, loss %.4f -> %.4f" % (t["torch"], t["steps"], t["loss_first"], t["loss_last"]))
sys.exit(1 if (strict and slow) else 0)
PYEOF
fi
# SVD routes (issue 17 §4): the LAPACK routes of src/core/svd.c timed and checked against dgesdd
# (tools/bench_svd.c; docs/scale.md "SVD routes"). BENCH_SVD=0 skips it; PARE_BENCH_BIG=1 adds the
# 4096x4096 and 4096x11008 shapes (minutes each).
if [ "${BENCH_SVD:-1}" = 1 ]; then
    echo "bench: SVD routes (build/opt/bench_svd)"
    "$ROOT/build/opt/bench_svd" "${BENCH_SVD_ROUNDS:-3}" || rc_f=1
fi
# Tokenizers (issue 16 §3): pare against Hugging Face tokenizers on wiki.test.raw, one row each.
echo "bench: tokenizers (tools/bench_tokenizer.sh)"
bash tools/bench_tokenizer.sh || rc_f=$?
exit $(( rc_fwd != 0 ? rc_fwd : rc_c != 0 ? rc_c : rc_t != 0 ? rc_t : rc_f ))
