#!/bin/bash
# Draws lines of points read from stdin (one "SERIES X Y" per line, whitespace-separated, # comments)
# with pare's own chart (pare.plot_size_quality): one line per series, the series named REFERENCE (if
# any) as a horizontal reference line. For figures of docs/results.md made from run records.
# Usage: tools/plot_points.sh PNG TITLE X_LABEL Y_LABEL [REFERENCE] [log_x] [log_y] < POINTS
# Environment: PARE_BIN (./pare)
set -euo pipefail
cd "$(dirname "$0")/.."
PARE=${PARE_BIN:-./pare}
[ $# -ge 4 ] || { echo "usage: $0 PNG TITLE X_LABEL Y_LABEL [REFERENCE] [log_x] [log_y] < POINTS" >&2; exit 2; }
png=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/points"
# a recipe holding the points: recipes read no files but their own
python3 - "$work/points" "$work/plot.lua" "${@:2}" <<'EOF'
import sys
src, dst, title, xl, yl = sys.argv[1:6]
ref = sys.argv[6] if len(sys.argv) > 6 else "none"
flags = sys.argv[7:]
for f in flags:
    if f not in ("log_x", "log_y"):
        sys.exit("plot_points.sh: unknown flag '%s' (log_x or log_y)" % f)
lua = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
rows = []
for line in open(src):
    f = line.split()
    if len(f) == 3 and not f[0].startswith("#"):
        rows.append("  {series = %s, params = %.17g, value = %.17g}," % (lua(f[0]), float(f[1]), float(f[2])))
if not rows:
    sys.exit("plot_points.sh: no points on standard input (SERIES X Y per line)")
with open(dst, "w") as out:
    out.write('params {model = {nil, "unused", type = "string", optional = true}}\n')
    out.write("local points = {\n%s\n}\n" % "\n".join(rows))
    out.write("function run(p)\n  pare.plot_size_quality(points, {path = pare.out(\"plot.png\"), log_x = %s, log_y = %s,\n"
              "    reference = %s, title = %s, x_label = %s, y_label = %s})\nend\n" % ("true" if "log_x" in flags else "false",
              "true" if "log_y" in flags else "false", lua(ref), lua(title), lua(xl), lua(yl)))
EOF
"$PARE" run "$work/plot.lua" --out "$work/out" --quiet
mv "$work/out/plot.png" "$png"
echo "plot: $png" >&2
