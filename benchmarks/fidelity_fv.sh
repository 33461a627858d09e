#!/usr/bin/env bash
# Issue 13's before/after for the forget-vector methods: forget_vector, fv_arithmetic and Retrain
# run by 686470f (before fidelity items 4 and 6: the arithmetic's penalty divided by |B|, δ
# learned under the training precision) and by this version with its defaults (--tuned none, so
# the shipped tuned settings do not mix in). The two runs go side by side, one torch thread
# each (two runs with every core's threads oversubscribe a small machine: README). Resumable:
# rerunning reuses every finished job of both roots.
#   OUT=/tmp/fid DATASET=fashion-mnist ARGS="--train-subset 3000" SEEDS=0,1,2 bash benchmarks/fidelity_fv.sh
# Prints the table (benchmarks/before_after.py) at the end.
set -u
cd "$(dirname "$0")/.."
HERE=$PWD
OUT=$(mkdir -p "${OUT:-results/fidelity-fv}" && cd "${OUT:-results/fidelity-fv}" && pwd)
DATASET=${DATASET:-digits}
SEEDS=${SEEDS:-0,1,2}
BEFORE_COMMIT=${BEFORE_COMMIT:-686470f}
METHODS=forget_vector,fv_arithmetic,retrain
WT="$OUT/worktree-$BEFORE_COMMIT"
[ -d "$WT" ] || git worktree add --detach "$WT" "$BEFORE_COMMIT" >/dev/null
printf '[execution]\nthreads_per_worker = 1\njobs = 1\n' > "$OUT/one-thread.toml"  # the old CLI has no --threads
export OMP_NUM_THREADS=1
# Each run imports mubench from its own directory (python -m puts the cwd first on sys.path).
(cd "$WT" && python -m mubench run --datasets "$DATASET" ${ARGS:-} --methods $METHODS --seeds "$SEEDS" \
    --config "$OUT/one-thread.toml" --quiet --out "$OUT/before" > "$OUT/before.log" 2>&1) &
BEFORE=$!
trap 'kill $BEFORE 2>/dev/null' EXIT
python -m mubench run --datasets "$DATASET" ${ARGS:-} --methods $METHODS --seeds "$SEEDS" --tuned none \
    --threads 1 --jobs 1 --quiet --out "$OUT/after" > "$OUT/after.log" 2>&1
AFTER_RC=$?
wait $BEFORE
BEFORE_RC=$?
trap - EXIT
echo "before rc $BEFORE_RC (log $OUT/before.log), after rc $AFTER_RC (log $OUT/after.log)"
python "$HERE/benchmarks/before_after.py" "$OUT/before" "$OUT/after" --methods $METHODS
echo "when done: git worktree remove $WT"
