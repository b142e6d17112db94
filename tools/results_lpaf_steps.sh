#!/bin/bash
# Plots the LPAF table's final perplexity against the fine-tuning budget: one line per variant over
# the output folders of tools/results_lpaf.sh run at several STEPS (the steps are read from each run
# record), dense-ft (the dense model fine-tuned on the same budget) among them. Also prints the rows as a
# markdown table.
# Usage: tools/results_lpaf_steps.sh PNG OUT1 OUT2 ...   e.g. PNG runs/lpaf100 runs/lpaf1000
# Environment: PARE_BIN (./pare)
set -euo pipefail
cd "$(dirname "$0")/.."
PARE=${PARE_BIN:-./pare}
[ $# -ge 2 ] || { echo "usage: $0 PNG OUT1 OUT2 ..." >&2; exit 2; }
png=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# a recipe holding the points (recipes read no files but their own): it only draws them
python3 - "$work/plot.lua" "$@" <<'EOF'
import glob, json, os, sys
dst, outs = sys.argv[1], sys.argv[2:]
points, rows = [], {}
for out in outs:
    for path in sorted(glob.glob(os.path.join(out, "*", "run.json"))):
        r = json.load(open(path))
        if r.get("status") != "complete":
            continue
        last = [x for x in r["results"] if x.get("metrics")][-1]
        ppl = next(m["value"] for m in last["metrics"] if m.get("name") == "ppl")
        name = os.path.basename(os.path.dirname(path))
        series = name.replace("keep0.5-", "")
        steps = r["params"]["steps"]
        points.append((series, steps, ppl))
        rows.setdefault(series, {})[steps] = ppl
with open(dst, "w") as f:
    f.write('params {model = {nil, "unused", type = "string", optional = true}}\nlocal points = {\n')
    for s, x, y in points:
        f.write('  {series = "%s", params = %d, value = %.17g},\n' % (s, x, y))
    f.write("""}
function run(p)
    pare.plot_size_quality(points, {path = pare.out("steps.png"), log_x = true, log_y = true,
        reference = "none", x_label = "fine-tuning steps (8 x 128 tokens each)",
        y_label = "held-out perplexity after fine-tuning", title = "LPAF and its baselines against the budget"})
end
""")
budgets = sorted({x for _, x, _ in points})
print("| run | " + " | ".join("ppl after %d steps" % b for b in budgets) + " |")
print("|---|" + "---|" * len(budgets))
for s in sorted(rows):
    print("| %s | " % s + " | ".join("%.2f" % rows[s][b] if b in rows[s] else "—" for b in budgets) + " |")
EOF
"$PARE" run "$work/plot.lua" --out "$work/out" --quiet
mv "$work/out/steps.png" "$png"
echo "plot: $png" >&2
