#!/bin/sh
# A/B of two Google Benchmark binaries (two builds of dann_bench or
# dann_bench_layers) on a machine whose speed drifts: the two run in turn,
# ROUNDS times, each pinned to the same core, and every benchmark's fastest
# and median round is printed per binary. On a shared or virtualised machine
# the fastest round is the steadier comparison (a slow phase only ever adds
# time).
#
#   bench/ab.sh FILTER ROUNDS BINARY_A BINARY_B [CPU]
#   bench/ab.sh 'DannStep.*MNIST.*threads:1' 8 /tmp/base/build/bench/dann_bench build/bench/dann_bench
#
# CPU (default 0) is the core both are pinned to (taskset); thread counts
# above 1 need a list, e.g. 0,1. Times are Google Benchmark's real time per
# iteration, in the benchmark's unit.
set -eu
if [ $# -lt 4 ]; then
    sed -n '2,15p' "$0" >&2
    exit 2
fi
filter=$1
rounds=$2
a=$3
b=$4
cpu=${5:-0}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$rounds" ]; do
    for bin in "$a" "$b"; do
        taskset -c "$cpu" "$bin" --benchmark_filter="$filter" --benchmark_min_time=0.1 \
            --benchmark_format=csv 2>/dev/null |
            awk -F, -v bin="$bin" 'NR > 1 && $3 != "" { print bin "," $1 "," $3 "," $5 }' >>"$out"
    done
    i=$((i + 1))
done
python3 - "$out" "$a" "$b" <<'EOF'
import collections, csv, sys
path, a, b = sys.argv[1:4]
times = collections.defaultdict(list)
units = {}
for row in csv.reader(open(path)):
    binary, name, t, unit = row[0], row[1], float(row[2]), row[3]
    times[(name, binary)].append(t)
    units[name] = unit
names = sorted({n for n, _ in times})
def num(x):
    return "%.0f" % x if x >= 100 else "%.3g" % x
print("A: %s\nB: %s" % (a, b))
print("%-64s %-24s %-24s" % ("benchmark (fastest / median round)", "A", "B"))
for n in names:
    cells = []
    for binary in (a, b):
        v = sorted(times.get((n, binary), []))
        cells.append("%s / %s %s" % (num(v[0]), num(v[len(v) // 2]), units[n]) if v else "-")
    print("%-64s %-24s %-24s" % (n.replace("/real_time", ""), cells[0], cells[1]))
EOF
