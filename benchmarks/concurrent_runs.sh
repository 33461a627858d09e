#!/usr/bin/env bash
# Two `mubench run` processes on one machine (the runner test's setting, 12 jobs): one run alone,
# two at once with the default threads (each takes every core), and two at once with --threads 1.
# Oversubscribed torch threads wait on each other at every parallel region. Prints wall seconds.
#   bash benchmarks/concurrent_runs.sh [TIMEOUT_S]
set -u
cd "$(dirname "$0")/.."
LIMIT=${1:-600}
GRID="--datasets digits --scenarios class:0 --seeds 0 --methods retrain,finetune,grad_ascent --set recipe.epochs=10 --quiet --backend sequential"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
timed() {  # label, then the command(s) to time; prints "label: N s (rc)"
  local label=$1; shift
  local start=$(date +%s.%N)
  "$@"; local rc=$?
  printf '%s: %.1f s (rc %s)\n' "$label" "$(echo "$(date +%s.%N) - $start" | bc)" "$rc"
}
one() { timeout "$LIMIT" python -m mubench run $GRID "$@" --out "$tmp/$RANDOM$RANDOM" >/dev/null 2>&1; }
two() { local root="$tmp/shared$RANDOM"; one_in() { timeout "$LIMIT" python -m mubench run $GRID "$@" --out "$root" >/dev/null 2>&1; }
        one_in "$@" & one_in "$@"; local rc=$?; wait $! || rc=$?; return $rc; }
echo "$(nproc) cores, $(python -c 'import torch; print("torch", torch.__version__)'), limit ${LIMIT} s"
timed "one run, default threads" one
timed "two runs at once, default threads" two
timed "two runs at once, --threads 1" two --threads 1
