#!/usr/bin/env bash
# Chooses the shallow networks' best recipe (docs/recipes.md) on two moons
# without any target label: every setting is trained on development draws
# (seeds other than the figures' 1-5) and scored by the recipe's own label-free
# score of the model it keeps (error on the labelled source training set + mean
# prediction entropy on the unlabelled target training set / ln 2). The setting
# with the lowest mean score wins. The moons generator writes target labels
# too (for evaluation); nothing here opens them.
#
#   examples/tune_moons.sh [--build DIR] [--out DIR] [--seeds FIRST-LAST] [--jobs J]
#
# Stages (each prints every setting's mean score over the seeds, lowest first):
#   1. method: plain DANN (one candidate, no self-training), 8 candidates with
#      label-free selection, 8 candidates each self-trained then selected
#      (lr 0.2, final lambda 6, 3000 steps);
#   2. DANN phase: initial learning rate x final lambda (3000 steps), with the
#      method of stage 1;
#   3. DANN phase length (1500, 3000, 6000 steps) at stage 2's values;
#   4. self-training rounds (5, 10, 20) at stage 3's values;
#   5. candidates (8, 16) at stage 4's values: the kept model's score can only
#      fall as candidates are added, so this is a compute budget; it shows the
#      gain.
# Results are cached per run in OUT/runs (rerunning skips finished runs).
set -euo pipefail

BUILD=build
OUT=tune-moons
SEEDS=101-120
JOBS=2

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "tune_moons.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

DANN=$(cd "$(dirname "$BUILD/tools/dann")" && pwd)/dann
[ -x "$DANN" ] || { echo "tune_moons.sh: no dann tool under $BUILD (build first)" >&2; exit 1; }
mkdir -p "$OUT/data" "$OUT/runs"
OUT=$(cd "$OUT" && pwd)
export OMP_NUM_THREADS=1
FIRST=${SEEDS%-*}
LAST=${SEEDS#*-}

for s in $(seq "$FIRST" "$LAST"); do
  [ -f "$OUT/data/$s/source-features" ] ||
    "$DANN" data moons --out "$OUT/data/$s" --seed "$s" >/dev/null
done

# run NAME SEED ARGS...: one training; its JSON summary in OUT/runs/NAME/SEED.json
run_one() {
  local name=$1 seed=$2; shift 2
  local dir=$OUT/runs/$name d=$OUT/data/$seed
  mkdir -p "$dir"
  [ -s "$dir/$seed.json" ] && return 0
  "$DANN" train --arch mlp:15 --source-images "$d/source-features" \
    --source-labels "$d/source-labels" --target-images "$d/target-features" \
    --seed "$seed" --out "$dir/$seed.dann" --quiet --json "$@" | tail -n 1 >"$dir/$seed.tmp"
  mv "$dir/$seed.tmp" "$dir/$seed.json"
}
export -f run_one
export OUT DANN

# evaluate NAME ARGS...: all seeds of one setting; prints "mean name"
evaluate() {
  local name=$1; shift
  seq "$FIRST" "$LAST" | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ "$name" {} "$@"
  python3 - "$OUT/runs/$name" <<'EOF'
import json, os, sys
d = sys.argv[1]
scores = []
for f in sorted(os.listdir(d)):
    if f.endswith('.json'):
        r = json.load(open(os.path.join(d, f)))
        scores.append(r['label_free_score'])
print('%.5f %s (n=%d, max %.4f)' % (sum(scores) / len(scores), os.path.basename(d), len(scores), max(scores)))
EOF
}

# stage TITLE NAME:ARGS...: evaluates each setting, prints them lowest first,
# and leaves the winner's name in $BEST.
stage() {
  local title=$1; shift
  local lines=() spec
  for spec in "$@"; do
    local name=${spec%%:*} args=${spec#*:}
    # shellcheck disable=SC2086  # args are space-separated options
    lines+=("$(evaluate "$name" $args)")
  done
  echo "== $title (mean label-free score over seeds $SEEDS, lower is better)"
  printf '%s\n' "${lines[@]}" | sort -n
  BEST=$(printf '%s\n' "${lines[@]}" | sort -n | head -n 1 | awk '{print $2}')
  echo "-> $BEST"
}

stage "1. method" \
  "plain:--candidates 1 --self-train-rounds 0 --lr 0.2 --lambda 6 --steps 3000" \
  "select8:--candidates 8 --self-train-rounds 0 --lr 0.2 --lambda 6 --steps 3000" \
  "select8-self10:--candidates 8 --self-train-rounds 10 --lr 0.2 --lambda 6 --steps 3000"
case $BEST in
  plain) METHOD="--candidates 1 --self-train-rounds 0" ;;
  select8) METHOD="--candidates 8 --self-train-rounds 0" ;;
  *) METHOD="--candidates 8 --self-train-rounds 10" ;;
esac

specs=()
for lr in 0.05 0.1 0.2 0.5; do
  for lam in 1 3 6; do
    specs+=("m${BEST}-lr${lr}-l${lam}:$METHOD --lr $lr --lambda $lam --steps 3000")
  done
done
stage "2. learning rate x lambda" "${specs[@]}"
LR=$(sed 's/.*-lr\([0-9.]*\)-l.*/\1/' <<<"$BEST")
LAM=$(sed 's/.*-l\([0-9.]*\)$/\1/' <<<"$BEST")

specs=()
for steps in 1500 3000 6000; do
  specs+=("steps${steps}-lr${LR}-l${LAM}:$METHOD --lr $LR --lambda $LAM --steps $steps")
done
stage "3. DANN phase length" "${specs[@]}"
STEPS=$(sed 's/^steps\([0-9]*\)-.*/\1/' <<<"$BEST")

if [[ $METHOD == *"--self-train-rounds 10"* ]]; then
  specs=()
  for rounds in 5 10 20; do
    specs+=("rounds${rounds}-steps${STEPS}-lr${LR}-l${LAM}:--candidates 8 --self-train-rounds $rounds --lr $LR --lambda $LAM --steps $STEPS")
  done
  stage "4. self-training rounds" "${specs[@]}"
  ROUNDS=$(sed 's/^rounds\([0-9]*\)-.*/\1/' <<<"$BEST")
  # 5. Candidates. The kept model's score can only fall as candidates are
  # added (the kept one is the minimum), so this stage shows how much it falls;
  # the count is a compute budget (each candidate ~1.6 s on one core).
  stage "5. candidates (a compute budget)" \
    "$BEST:--candidates 8 --self-train-rounds $ROUNDS --lr $LR --lambda $LAM --steps $STEPS" \
    "cands16-$BEST:--candidates 16 --self-train-rounds $ROUNDS --lr $LR --lambda $LAM --steps $STEPS"
fi
echo "chosen: $BEST"
