#!/bin/bash
# The LPAF table against the fine-tuning budget: from the output folders of tools/results_lpaf.sh run
# at several STEPS (each run record says its steps), a markdown table of the final perplexity per run
# and budget on stdout and a plot of it (one line per run, dense-ft among them).
# Usage: tools/results_lpaf_steps.sh PNG OUT1 OUT2 ...   e.g. PNG runs/lpaf100 runs/lpaf1000
# Environment: PARE_BIN (./pare)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 PNG OUT1 OUT2 ..." >&2; exit 2; }
png=$1
shift
points=$(mktemp)
trap 'rm -f "$points"' EXIT
python3 - "$points" "$@" <<'EOF'
import glob, json, os, sys
dst, outs = sys.argv[1], sys.argv[2:]
rows = {}
with open(dst, "w") as f:
    for out in outs:
        for path in sorted(glob.glob(os.path.join(out, "*", "run.json"))):
            r = json.load(open(path))
            if r.get("status") != "complete":
                continue
            last = [x for x in r["results"] if x.get("metrics")][-1]
            ppl = next(m["value"] for m in last["metrics"] if m.get("name") == "ppl")
            series = os.path.basename(os.path.dirname(path))
            steps = r["params"]["steps"]
            f.write("%s %d %.17g\n" % (series, steps, ppl))
            rows.setdefault(series, {})[steps] = ppl
budgets = sorted({b for v in rows.values() for b in v})
print("| run | " + " | ".join("after %d steps" % b for b in budgets) + " |")
print("|---|" + "---|" * len(budgets))
for s in sorted(rows):
    print("| %s | " % s + " | ".join("%.2f" % rows[s][b] if b in rows[s] else "—" for b in budgets) + " |")
EOF
tools/plot_points.sh "$png" "LPAF and its baselines against the fine-tuning budget" \
    "fine-tuning steps (8 x 128 tokens each)" "held-out perplexity after fine-tuning" none log_x log_y <"$points"
