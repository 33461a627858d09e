#!/usr/bin/env bash
# U-LiRA measurement on digits (issue 15), added to a finished grid: resumable (rerun it to
# continue); one cell per command, so a cut-off run keeps every finished cell's records.
#   OUT=results METHODS=all K=16 SEEDS="0 1 2" bash benchmarks/ulira_digits.sh
# JOBS workers (default 2) of THREADS torch threads (default: the cores shared among them);
# VARIANCE the σ rule (default tied; per_side is MIA.md's text, docs/metrics.md "Which σ").
set -u
cd "$(dirname "$0")/.."
METHODS=${METHODS:-retrain,finetune,forget_vector}
K=${K:-8}
SEEDS=${SEEDS:-0 1 2}
OUT=${OUT:-results/ulira}
for seed in $SEEDS; do
  for sc in random:10 class:0; do
    echo "cell $sc seed $seed start $(date -u +%T)"
    python -m mubench run --datasets digits --scenarios "$sc" --seeds "$seed" --methods "$METHODS" \
      --set evaluation.attacks=svc,refmia,ulira --set evaluation.attacks.ulira.shadows="$K" \
      --set evaluation.attacks.ulira.variance="${VARIANCE:-tied}" --jobs "${JOBS:-2}" --threads "${THREADS:-0}" --quiet --out "$OUT"
    rc=$?  # before the echo: a $(...) in its text would reset $?
    echo "cell $sc seed $seed end $(date -u +%T) rc $rc"
  done
done
