#!/usr/bin/env bash
# .ci/cross_check.sh: dann cross-compiled for Linux arm64 (AArch64) and its
# tests run under qemu-user.
#
#   .ci/cross_check.sh [DOCTEST_FILTER...]
#
# 1. platform/fetch-arm64-sysroot.sh: Debian 12 arm64 oneDNN, zlib, doctest
#    and runtime libraries into the sysroot (idempotent; ~25 s the first time);
# 2. configures build-arm64/ with platform/aarch64-linux-gnu.cmake (Release,
#    DANN_TEST_SIZE=tiny, benchmarks off) and builds it;
# 3. runs the doctest suite under qemu-aarch64 once per emulated CPU (all
#    CPUs at once when there are several cores), and prints each run's time
#    and slowest cases; then the C link test and the tool. neoverse-n1 is NEON
#    only, like most real boards: oneDNN 2.6 runs its reference kernels there.
#    qemu's default CPU has 512-bit SVE, where oneDNN has JIT kernels, which
#    qemu emulates some 10 times slower still. Both run every suite but heavy
#    (tests/test_size.hpp keeps the long training cases short at the default
#    size, tiny); the SVE run leaves out two long recipe cases (below);
# 4. prints which oneDNN implementations a small whole-network case uses on
#    each CPU (ONEDNN_VERBOSE).
#
# Arguments are doctest options for every CPU's run, e.g.
#   .ci/cross_check.sh -tc='*gradients agree*'
# Environment:
#   DANN_CROSS_TESTS      doctest options when no arguments are given
#                         (default -tse=heavy: all but the heavy suite)
#   DANN_CROSS_TESTS_SVE  the same for qemu's default CPU (and max, a64fx)
#                         only (default: DANN_CROSS_TESTS, else -tse=heavy
#                         without the two long MNIST-network recipe cases)
#   DANN_CROSS_CPUS       emulated CPUs (default "neoverse-n1 default";
#                         "default" leaves QEMU_CPU unset)
#   DANN_CROSS_PARALLEL   1: the CPUs' runs at once (default when there are
#                         several CPUs and cores), 0: one after the other
#   DANN_CROSS_BUILD    build folder (default build-arm64)
#   DANN_ARM64_SYSROOT  sysroot folder (default build-sysroot-arm64)
#   DANN_CI_JOBS=2      parallel build jobs
# Packages (Debian 12, host amd64): g++-aarch64-linux-gnu qemu-user cmake make
# (and apt, dpkg, debian-archive-keyring for the sysroot).
# Times measured on a 2-core x86-64 host: build ~6 min; neoverse-n1, all but
# heavy (274 cases), about 4 min of CPU; the default CPU's run several times
# that (SVE emulation), the longest part of the stage. Each run's summary
# line gives its wall and CPU seconds.
# Exit status 0 only if the build and every run passed.
set -euo pipefail

repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$repo"
jobs=${DANN_CI_JOBS:-2}
build=${DANN_CROSS_BUILD:-$repo/build-arm64}
export DANN_ARM64_SYSROOT=${DANN_ARM64_SYSROOT:-$repo/build-sysroot-arm64}
read -r -a cpus <<<"${DANN_CROSS_CPUS:-neoverse-n1 default}"
given=("$@")
# On the SVE CPUs qemu emulates oneDNN's JIT convolutions so slowly that the
# two recipe cases that train the paper's MNIST network four and six times
# (bitwise determinism, resume from a checkpoint; at least 3 minutes each
# there) do not fit CI's time. They are about dann's recipe code, not the CPU:
# they run natively and on neoverse-n1, and the shorter MNIST-network recipe
# cases (a checkpoint beyond the run's length, the paper recipe's network)
# run on SVE too.
sve_exclude='-tce=convolutional*bitwise-identical*,*resumed*mid-way*'
filter_for() {   # cpu -> the array "filter"
    if ((${#given[@]})); then
        filter=("${given[@]}")
    elif [[ $1 == default || $1 == max || $1 == a64fx ]]; then
        read -r -a filter <<<"${DANN_CROSS_TESTS_SVE:-${DANN_CROSS_TESTS:--tse=heavy $sve_exclude}}"
    else
        read -r -a filter <<<"${DANN_CROSS_TESTS:--tse=heavy}"
    fi
}
if ((${#cpus[@]} > 1 && $(nproc) > 1)); then parallel=${DANN_CROSS_PARALLEL:-1}; else parallel=${DANN_CROSS_PARALLEL:-0}; fi
export OMP_NUM_THREADS=1 LC_ALL=C
failures=0
summary=()

x() { echo "+ $*"; "$@"; }
section() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

for tool in aarch64-linux-gnu-g++ qemu-aarch64 cmake; do
    command -v "$tool" >/dev/null ||
        { echo "cross_check: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user cmake)" >&2; exit 1; }
done

section "sysroot"
t=$(now)
x platform/fetch-arm64-sysroot.sh "$DANN_ARM64_SYSROOT"
echo "sysroot: $(elapsed "$t") s"

section "configure and build ($build)"
t=$(now)
x cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="$repo/platform/aarch64-linux-gnu.cmake" \
    -DDANN_ARM64_SYSROOT="$DANN_ARM64_SYSROOT" -DCMAKE_BUILD_TYPE=Release \
    -DDANN_BUILD_BENCH=OFF -DDANN_BUILD_FUZZERS=OFF -DDANN_TEST_SIZE=tiny
x cmake --build "$build" -j"$jobs"
build_s=$(elapsed "$t")
echo "build: $build_s s"
readelf -h "$build/tests/dann_tests" | grep -q 'AArch64' ||
    { echo "cross_check: $build/tests/dann_tests is not an AArch64 program" >&2; exit 1; }

qemu=(qemu-aarch64 -L "$DANN_ARM64_SYSROOT")
with_cpu() {   # cpu, command...: the command with QEMU_CPU set (or unset for "default")
    local cpu=$1
    shift
    if [[ $cpu == default ]]; then env -u QEMU_CPU "$@"; else QEMU_CPU=$cpu "$@"; fi
}

# Everything about one emulated CPU; its report goes to stdout, its summary
# lines to $build/qemu-$cpu.summary, the number of failed runs to
# $build/qemu-$cpu.failures.
check_cpu() {
    local cpu=$1 log s t rc cases cpu_s failed=0 lines=()
    section "doctest suite under qemu, CPU $cpu: ${filter[*]}"
    log=$build/qemu-$cpu.log
    t=$(now)
    rc=0
    # CPU seconds besides wall time: on a busy machine they say what the run costs.
    local TIMEFORMAT='%U %S'
    { time with_cpu "$cpu" "${qemu[@]}" "$build/tests/dann_tests" "${filter[@]}" --duration=true \
        </dev/null >"$log" 2>&1 || rc=$?; } 2>"$log.cpu"
    s=$(elapsed "$t")
    cpu_s=$(awk '{ printf "%.0f", $1 + $2 }' "$log.cpu")
    # doctest's --duration lines ("0.123456 s: name"): the slowest cases
    echo "slowest cases:"
    # (|| true: under pipefail, head closing the pipe early would end the check)
    { grep -E '^[0-9]+\.[0-9]+ s: ' "$log" || true; } | sort -rn | head -n 8 | sed 's/^/  /' || true
    tail -n 4 "$log"
    cases=$(sed -n 's/.*test cases: *\([0-9]*\).*/\1/p' "$log" | tail -n1)
    lines+=("$(printf '%-12s %-10s %8s s (cpu %s s)  %s cases (%s)  rc=%s' "$cpu" doctest "$s" "$cpu_s" \
        "${cases:-?}" "${filter[*]}" "$rc")")
    # A run that lists no case at all proves nothing.
    [[ ${cases:-0} -gt 0 ]] || { echo "FAIL: no test case ran under qemu ($cpu)"; rc=1; }
    if ((rc != 0)); then
        echo "FAIL: doctest under qemu ($cpu), log $log; its failures:"
        grep -E 'ERROR|FATAL|SIGSEGV|SIGABRT|TEST CASE' "$log" | head -n 40 | sed 's/^/  /' || true
        failed=$((failed + 1))
    fi

    t=$(now)
    rc=0
    with_cpu "$cpu" "${qemu[@]}" "$build/tests/dann_link_c" </dev/null >/dev/null 2>&1 || rc=$?
    with_cpu "$cpu" "${qemu[@]}" "$build/tools/dann" --help </dev/null >/dev/null 2>&1 || rc=$?
    lines+=("$(printf '%-12s %-10s %8s s  link_c + dann --help  rc=%s' "$cpu" programs "$(elapsed "$t")" "$rc")")
    ((rc == 0)) || { echo "FAIL: dann_link_c or dann --help under qemu ($cpu)"; failed=$((failed + 1)); }

    # Which oneDNN kernels this CPU gets: a small whole-network case
    # (convolution, pooling, inner product, eltwise, reorders).
    with_cpu "$cpu" env ONEDNN_VERBOSE=1 "${qemu[@]}" "$build/tests/dann_tests" \
        -tc='*whole network the features*' </dev/null >"$build/qemu-$cpu-onednn.log" 2>&1 || true
    echo "oneDNN on CPU $cpu: $(grep -m1 -E '^onednn_verbose,info,cpu,isa:' "$build/qemu-$cpu-onednn.log" |
        cut -d, -f4-)"
    echo "  executions  primitive  implementation  propagation"
    awk -F, '$1 == "onednn_verbose" && $2 == "exec" { print $4 "  " $5 "  " $6 }' \
        "$build/qemu-$cpu-onednn.log" | sort | uniq -c | sort -rn | head -n 20 || true
    printf '%s\n' "${lines[@]}" >"$build/qemu-$cpu.summary"
    echo "$failed" >"$build/qemu-$cpu.failures"
}

# One qemu per CPU at a time; with DANN_CROSS_PARALLEL=1 every CPU's runs at
# once (each qemu runs one thread most of the time), reports printed in order.
for cpu in "${cpus[@]}"; do rm -f "$build/qemu-$cpu".{summary,failures,report}; done
if [[ $parallel == 1 ]]; then
    section "running the CPUs' checks in parallel: ${cpus[*]}"
    pids=()
    for cpu in "${cpus[@]}"; do
        filter_for "$cpu"
        check_cpu "$cpu" >"$build/qemu-$cpu.report" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    for cpu in "${cpus[@]}"; do cat "$build/qemu-$cpu.report"; done
else
    for cpu in "${cpus[@]}"; do
        filter_for "$cpu"
        check_cpu "$cpu"
    done
fi
for cpu in "${cpus[@]}"; do
    if [[ -f $build/qemu-$cpu.summary && -f $build/qemu-$cpu.failures ]]; then
        mapfile -t -O "${#summary[@]}" summary <"$build/qemu-$cpu.summary"
        failures=$((failures + $(cat "$build/qemu-$cpu.failures")))
    else
        summary+=("$(printf '%-12s did not finish' "$cpu")")
        failures=$((failures + 1))
    fi
done

section "summary (build $build_s s)"
printf '%s\n' "${summary[@]}"
if ((failures)); then
    echo "cross_check: $failures run(s) FAILED"
    exit 1
fi
echo "cross_check: all runs passed"
