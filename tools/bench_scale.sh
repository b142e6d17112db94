#!/usr/bin/env bash
# make bench-scale: pare init of real shapes (tools/shapes/), streamed to disk; prints the wall time,
# the write rate and the peak RSS (GNU time's maximum resident set size) of each, against the model's
# size. Issue 17's later figures (eval, spectra, compress of these shapes) will join this script.
# BENCH_SCALE_SHAPES picks the shapes (default: llama-3.2-1b, and llama-7b when the disk has room);
# BENCH_SCALE_DIR the scratch folder (default /tmp), emptied of what this script wrote at the end.
set -euo pipefail
dir=${BENCH_SCALE_DIR:-/tmp}/pare-bench-scale.$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
free_gb=$(df -P -B1G "$dir" | awk 'NR == 2 { print $4 }')
shapes=${BENCH_SCALE_SHAPES:-llama-3.2-1b $([ "$free_gb" -ge 20 ] && echo llama-7b)}
printf '%-16s %8s %10s %9s %10s %14s %12s\n' shape params "disk (GB)" "time (s)" "MB/s" "peak RSS (MiB)" "fp32 slab"
for s in $shapes; do
    cfg=tools/shapes/$s.json
    params=$(./pare info --config "$cfg" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["params"]["total"])')
    start=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$dir/rss" ./pare init --config "$cfg" --out "$dir/$s" --dtype bf16 >/dev/null 2>&1
    end=$(date +%s.%N)
    bytes=$(du -sb "$dir/$s" | cut -f1)
    awk -v s="$s" -v p="$params" -v b="$bytes" -v t0="$start" -v t1="$end" -v rss="$(cat "$dir/rss")" 'BEGIN {
        t = t1 - t0; printf "%-16s %7.2fB %10.2f %9.1f %10.0f %14.1f %9.1f GiB\n", s, p / 1e9, b / 1e9, t, b / 1e6 / t,
        rss / 1024, p * 4 / 2^30 }'
    rm -rf "${dir:?}/$s"
done
