#!/usr/bin/env bash
# Issue 13's before/after on Fashion-MNIST[3000] (class:0, random:10, seeds 0-2): SCRUB's and
# SSD's defaults as mubench had them before the fidelity fixes, against the reference's defaults
# mubench uses now. Untuned (--tuned none): the fixes, not the tuning, are measured. Resumable.
#   OUT=/work/tune-runs/fidelity bash benchmarks/fidelity_fmnist.sh
# Then: python -m mubench report --results "$OUT" --out "$OUT/report" --format md
# Seed the output root from a finished report run to reuse its originals and Retrains:
#   cp -r RUN/artifacts RUN/records "$OUT"/ && rm -r "$OUT"/records/method
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-results/fidelity}
run() { python -m mubench run --config experiments/fashion-mnist.toml --tuned none --jobs 2 --quiet --out "$OUT" "$@"; }
run --methods retrain,scrub,ssd                                     # after: the reference's defaults
run --methods scrub --set scrub.batch_size=128 --set scrub.forget_batch_size=32 --set scrub.augment=true
run --methods ssd --set ssd.full_order=shuffled                     # before: mixed-class batches for I_D
