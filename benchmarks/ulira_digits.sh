#!/usr/bin/env bash
# U-LiRA measurement on digits (issue 15); resumable: rerun this script to continue.
# One cell per command, so each finished cell has its records even if a later one is cut off.
cd /work/wt-ulira
export PYTHONPATH=/work/wt-ulira OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
METHODS=${METHODS:-retrain,finetune,forget_vector}
K=${K:-8}
for seed in 0 1 2; do
  for sc in random:10 class:0; do
    echo "cell $sc seed $seed start $(date -u +%T)"
    python -m mubench run --datasets digits --scenarios $sc --seeds $seed --methods $METHODS \
      --set evaluation.attacks=svc,ulira --set evaluation.ulira_shadows=$K --jobs 2 --quiet --out results/ulira/store
    echo "cell $sc seed $seed end $(date -u +%T) rc $?"
  done
done
