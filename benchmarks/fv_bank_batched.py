"""The class-wise forget-vector bank: batched (all class problems stacked through the model)
against one class at a time.

`mubench.methods._fv_bank.learn_vectors` learns δ_1…δ_K of one frozen model. Batched, every batch goes through the
model as K perturbed copies and all vectors stop together; one at a time, K runs of the
forget_vector method each stop on their own. Both on the digits original (small CNN, preset
recipe, seed 0) with the preset's class-wise params; the figures are the runtime ratio and the
largest UA / RA difference over the K class:k vectors.

    python benchmarks/fv_bank_batched.py      # about 5 minutes on one core (one repeat)
"""

from __future__ import annotations

from _common import interleaved, parser, record, setup, table
from fv_convergence import fv_params, ua_ra

from mubench.pipeline import build_task, cached_dataset, get_original, get_split
from mubench.predictor import Predictor
from mubench.presets import preset_for


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.set_defaults(repeats=1)
    args = p.parse_args()
    device = setup(args)
    from mubench.methods._fv_bank import MAX_STACK_VALUES, learn_vectors
    from mubench.plugins import load_plugins

    load_plugins(())
    data = cached_dataset(args.dataset)
    original = get_original(None, data, "small_cnn", preset_for(args.dataset).recipe, 0, device, progress=False)
    params = fv_params(args.dataset, "class")
    banks = {}

    def learn(batched: bool):
        def task_of(k: int):
            return build_task(data, get_split(None, data, f"class:{k}", 0), original.model, "small_cnn",
                              preset_for(args.dataset).recipe, 0, device, precision="fp32")

        banks[batched] = learn_vectors(task_of, data.num_classes, params, batched, device)[0]

    seconds = interleaved({"batched": lambda: learn(True), "one class at a time": lambda: learn(False)},
                          args.repeats, device, warmup=False)
    worst_ua = worst_ra = 0.0
    for k in range(data.num_classes):
        split = get_split(None, data, f"class:{k}", 0)
        got = {b: ua_ra(Predictor(original.model, delta=bank[k]), data, split, device)
               for b, bank in banks.items()}
        worst_ua = max(worst_ua, abs(got[True][0] - got[False][0]))
        worst_ra = max(worst_ra, abs(got[True][1] - got[False][1]))
    speedup = seconds["one class at a time"] / seconds["batched"]
    figures = {"seconds": {k: round(v, 3) for k, v in seconds.items()}, "classes": data.num_classes,
               "batch_size": params.batch_size, "max_stack_values": MAX_STACK_VALUES, "max_ua_diff": worst_ua,
               "max_ra_diff": worst_ra, "dataset": data.name}
    record("fv_bank", args, device, figures, speedup, model="small_cnn")
    print(f"\nClass-wise bank on {data.name} ({data.num_classes} classes, batch {params.batch_size}; {device}, "
          f"{args.threads} thread(s), medians of {args.repeats}); speedup = batched over one at a time")
    print(table(["one class at a time s", "batched s", "speedup", "max |ΔUA|", "max |ΔRA|"],
                [[seconds["one class at a time"], seconds["batched"], speedup, worst_ua, worst_ra]]))


if __name__ == "__main__":
    main()
