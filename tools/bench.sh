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

# --- table ----------------------------------------------------------------------------------------
"$PY" - "$TMP" "$HAVE_TORCH" "${BENCH_STRICT:-0}" "${ran[@]}" <<'PYEOF'
import json, os, sys

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
    w = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = lambda r: " | ".join((s.ljust(w[i]) if i in (0, len(cols) - 1) else s.rjust(w[i]))
                                for i, s in enumerate(r)).rstrip()
    print()
    print(line(cols))
    print("-+-".join("-" * x for x in w))
    for r in rows:
        print(line(r))
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
