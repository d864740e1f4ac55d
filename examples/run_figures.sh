#!/usr/bin/env bash
# Runs every figure of the recipes (docs/recipes.md) through the `dann` tool
# and prints each run and, per figure, the mean, min and max over the seeds.
#
#   examples/run_figures.sh [--build DIR] [--out DIR] [--threads T] [--jobs J]
#                           [--fmnist DIR] [--only SUBSTRING] [--steps N] [--bf16]
#
# Figures (accuracy on the target test set after the last step):
#   paper recipe, MNIST network, 10000 steps: source only and DANN, seeds 1-3,
#     and the target-oracle reference (trained on labelled target data);
#   best recipe (the default), MNIST network, 10000 steps: DANN, seeds 1-3;
#   two moons rotated 35 degrees, mlp:15, best recipe (6000 steps per
#     candidate): DANN and source only, seeds 1-5.
# With --bf16 (CPUs with AVX512-BF16 or AMX): the paper and best DANN runs
#   again with `--precision bf16`, seeds 1-3, next to their f32 figures.
#
# Each run has its own folder under OUT/runs/. A run whose result.json exists
# is skipped; a run cut off midway resumes from its checkpoint. So the script
# can be stopped at any moment and started again with the same arguments.
# --jobs J runs J trainings at once (on 2 cores: --jobs 2 --threads 1).
# --only runs (and tabulates) only the runs whose name contains SUBSTRING;
# --steps overrides every run's length (for a quick smoke test of the script).
#
# Target labels are read by `dann eval` (the figure) and by the target-oracle
# runs (which train on them), by nothing else.
set -euo pipefail

BUILD=build
OUT=figures
THREADS=1
JOBS=1
FMNIST=/usr/share/datasets/fashion-mnist
ONLY=""
STEPS=""

BF16=0
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --fmnist) FMNIST=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --bf16) BF16=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_figures.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

DANN=$BUILD/tools/dann
if [ ! -x "$DANN" ]; then
  echo "run_figures.sh: no dann tool at $DANN (build first, or pass --build DIR)" >&2
  exit 1
fi
mkdir -p "$OUT/data" "$OUT/runs"
OUT=$(cd "$OUT" && pwd)
export OMP_NUM_THREADS=$THREADS

IMAGE_STEPS=${STEPS:-10000}
MOONS_STEPS=${STEPS:-6000}
# A 10000-step run cut off loses at most 500 steps.
CHECKPOINT_EVERY=$(( IMAGE_STEPS >= 2000 ? 500 : (IMAGE_STEPS >= 4 ? IMAGE_STEPS / 4 : 1) ))
FM=$OUT/data/fmnist-m

# --- data -------------------------------------------------------------------

need_fmnist_m() {
  [ -f "$FM/train-images-idx4-ubyte" ] && [ -f "$FM/t10k-labels-idx1-ubyte" ] && return 0
  echo "building Fashion-MNIST-M into $FM" >&2
  "$DANN" data fmnist-m --fmnist "$FMNIST" --out "$FM" --quiet > /dev/null
}

need_moons() { # seed
  local dir=$OUT/data/moons-s$1
  [ -f "$dir/test-labels" ] && return 0
  "$DANN" data moons --seed "$1" --out "$dir" > /dev/null
}

# --- runs -------------------------------------------------------------------
# A run: name, then the `dann train` arguments other than data and outputs.

RUNS=()
add() { RUNS+=("$*"); }
for s in 1 2 3 4 5; do
  add "moons-dann-$MOONS_STEPS-s$s moons $s --arch mlp:15 --recipe best --mode dann --steps $MOONS_STEPS"
  add "moons-source-only-$MOONS_STEPS-s$s moons $s --arch mlp:15 --recipe best --mode source-only --steps $MOONS_STEPS"
done
for s in 1 2 3; do
  add "best-dann-$IMAGE_STEPS-s$s fmnist $s --arch mnist --recipe best --mode dann --steps $IMAGE_STEPS"
  add "paper-dann-$IMAGE_STEPS-s$s fmnist $s --arch mnist --recipe paper --mode dann --steps $IMAGE_STEPS"
  add "paper-source-only-$IMAGE_STEPS-s$s fmnist $s --arch mnist --recipe paper --mode source-only --steps $IMAGE_STEPS"
  add "paper-target-oracle-$IMAGE_STEPS-s$s fmnist $s --arch mnist --recipe paper --mode target-oracle --steps $IMAGE_STEPS"
done
if [ $BF16 = 1 ]; then
  for s in 1 2 3; do
    add "best-dann-bf16-$IMAGE_STEPS-s$s fmnist $s --arch mnist --recipe best --mode dann --steps $IMAGE_STEPS --precision bf16"
    add "paper-dann-bf16-$IMAGE_STEPS-s$s fmnist $s --arch mnist --recipe paper --mode dann --steps $IMAGE_STEPS --precision bf16"
  done
fi

selected() { [ -z "$ONLY" ] || [[ "$1" == *"$ONLY"* ]]; }

run_one() { # name data seed train-args...
  local name=$1 data=$2 seed=$3
  shift 3
  local dir=$OUT/runs/$name
  [ -f "$dir/result.json" ] && return 0
  mkdir -p "$dir"
  local src_x src_y tgt_x tgt_y test_x test_y
  if [ "$data" = moons ]; then
    local m=$OUT/data/moons-s$seed
    src_x=$m/source-features; src_y=$m/source-labels
    tgt_x=$m/target-features; tgt_y=$m/target-labels
    test_x=$m/test-features; test_y=$m/test-labels
  else
    src_x=$FMNIST/train-images-idx3-ubyte.gz; src_y=$FMNIST/train-labels-idx1-ubyte.gz
    tgt_x=$FM/train-images-idx4-ubyte; tgt_y=$FM/train-labels-idx1-ubyte
    test_x=$FM/t10k-images-idx4-ubyte; test_y=$FM/t10k-labels-idx1-ubyte
  fi
  local target=(--target-images "$tgt_x") every=()
  [ "$data" = moons ] || every=(--checkpoint-every "$CHECKPOINT_EVERY")
  case " $* " in *" target-oracle "*) target+=(--target-labels "$tgt_y") ;; esac
  local start=$SECONDS
  echo "[$(date +%H:%M:%S)] start  $name" >&2
  if ! "$DANN" train "$@" --seed "$seed" --threads "$THREADS" \
      --source-images "$src_x" --source-labels "$src_y" "${target[@]}" \
      --out "$dir/model.dann" --checkpoint "$dir/checkpoint" --resume "$dir/checkpoint" "${every[@]}" \
      --log "$dir/log.csv" --plot "$dir/curves.svg" --quiet --json \
      > "$dir/train.json" 2> "$dir/train.err"; then
    echo "[$(date +%H:%M:%S)] FAILED $name (see $dir/train.err)" >&2
    return 1
  fi
  if ! "$DANN" eval --model "$dir/model.dann" --images "$test_x" --labels "$test_y" \
      --domain target --threads "$THREADS" --json > "$dir/eval.json" 2> "$dir/eval.err"; then
    echo "[$(date +%H:%M:%S)] FAILED $name evaluation (see $dir/eval.err)" >&2
    return 1
  fi
  local acc
  acc=$(sed -n 's/.*"accuracy": *\([-0-9.eE+]*\).*/\1/p' "$dir/eval.json" | tail -n 1)
  printf '{"run": "%s", "accuracy": %s, "seconds": %d}\n' "$name" "$acc" $((SECONDS - start)) \
    > "$dir/result.json.tmp"
  mv "$dir/result.json.tmp" "$dir/result.json"
  rm -f "$dir/checkpoint" "$dir"/checkpoint.*
  echo "[$(date +%H:%M:%S)] done   $name: target accuracy $acc" >&2
}

# Data first (once, not in parallel), then the runs, J at a time.
need_image_data=0
for r in "${RUNS[@]}"; do
  set -- $r
  selected "$1" || continue
  [ -f "$OUT/runs/$1/result.json" ] && continue
  if [ "$2" = moons ]; then need_moons "$3"; else need_image_data=1; fi
done
[ $need_image_data = 1 ] && need_fmnist_m

failed=0
for r in "${RUNS[@]}"; do
  set -- $r
  selected "$1" || continue
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
  run_one "$@" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
wait || failed=1

# --- table ------------------------------------------------------------------

accuracy_of() { # run name -> accuracy or ""
  local f=$OUT/runs/$1/result.json
  [ -f "$f" ] && sed -n 's/.*"accuracy": *\([-0-9.eE+]*\).*/\1/p' "$f"
}

declare -A MEAN
figure() { # key title goal seeds name-prefix
  local key=$1 title=$2 goal=$3 seeds=$4 prefix=$5 values="" n=0 s a
  for s in $(seq 1 "$seeds"); do
    selected "$prefix-s$s" || continue
    a=$(accuracy_of "$prefix-s$s")
    if [ -n "$a" ]; then values="$values $a"; n=$((n + 1)); fi
  done
  [ -z "$values" ] && { printf '%-44s %5s\n' "$title" "0/$seeds"; return 0; }
  local stats
  stats=$(echo "$values" | awk '{ m = 0; lo = 2; hi = -1
    for (i = 1; i <= NF; i++) { m += $i; if ($i < lo) lo = $i; if ($i > hi) hi = $i }
    printf "%.4f %.4f %.4f", m / NF, lo, hi }')
  MEAN[$key]=${stats%% *}
  printf '%-44s %5s %8s %8s %8s   %s\n' "$title" "$n/$seeds" $stats "$goal"
  printf '    runs:%s\n' "$values"
}

echo
echo "Target-domain test accuracy after the last step (every run; mean, min, max over seeds)"
printf '%-44s %5s %8s %8s %8s   %s\n' figure runs mean min max goal
figure paper_so "paper source only (mnist, $IMAGE_STEPS steps)" "0.378 +- 0.015" 3 "paper-source-only-$IMAGE_STEPS"
figure paper_dann "paper DANN (mnist, $IMAGE_STEPS steps)" "0.611 +- 0.015" 3 "paper-dann-$IMAGE_STEPS"
figure best_dann "best DANN (mnist, $IMAGE_STEPS steps)" ">= 0.72" 3 "best-dann-$IMAGE_STEPS"
if [ $BF16 = 1 ]; then
  figure paper_dann_bf16 "paper DANN, bf16 (mnist, $IMAGE_STEPS steps)" "f32 +- 0.005" 3 "paper-dann-bf16-$IMAGE_STEPS"
  figure best_dann_bf16 "best DANN, bf16 (mnist, $IMAGE_STEPS steps)" "f32 +- 0.005" 3 "best-dann-bf16-$IMAGE_STEPS"
fi
figure oracle "paper target oracle (mnist, $IMAGE_STEPS steps)" "reference" 3 "paper-target-oracle-$IMAGE_STEPS"
figure moons_so "moons source only (mlp:15, $MOONS_STEPS steps)" "reference" 5 "moons-source-only-$MOONS_STEPS"
figure moons_dann "moons DANN (mlp:15, best, $MOONS_STEPS steps)" ">= 0.97" 5 "moons-dann-$MOONS_STEPS"

gap() { # title dann-key
  local so=${MEAN[paper_so]:-} d=${MEAN[$2]:-} o=${MEAN[oracle]:-}
  [ -n "$so" ] && [ -n "$d" ] && [ -n "$o" ] || return 0
  awk -v so="$so" -v d="$d" -v o="$o" -v t="$1" \
    'BEGIN { if (o > so) printf "share of the source-only -> oracle gap closed, %s: %.1f%%\n", t, 100 * (d - so) / (o - so) }'
}
echo
gap "paper DANN" paper_dann
gap "best DANN" best_dann
echo "(paper source-only and oracle as the two ends; the paper's MNIST-M figure is 56%)"
echo "runs and their logs, curves and models: $OUT/runs"
exit $failed
