"""Forget vectors: the convergence stop against SPEC §4's fixed 100-epoch schedule.

The fixed schedule runs 100 epochs (lr × 0.9 an epoch, so the step is below 1e-5 long before
the end); mubench stops once δ's relative change over an epoch is below `tol` (default 1e-3).
Both ways learn δ for the digits original (small CNN, preset recipe, seed 0) on class:0 and
random:10 with the preset's other params; a sweep of looser `tol` values shows how far the stop
can go. The figures are the runtime ratio to the fixed schedule and the UA / RA difference
(the stop must not change what is learned: within 1 point).

    python benchmarks/fv_convergence.py       # about 4 minutes on one core
"""

from __future__ import annotations

import dataclasses

from _common import interleaved, parser, record, setup, table

from mubench.evaluation import evaluate
from mubench.params import apply_overrides
from mubench.pipeline import build_task, cached_dataset, get_original, get_split
from mubench.predictor import Predictor
from mubench.presets import preset_for


def fv_params(dataset: str, kind: str, **changes):
    from mubench.methods.forget_vector import ForgetVector

    params = apply_overrides(ForgetVector.Params(), ForgetVector.dataset_defaults(dataset, kind), "preset")
    return dataclasses.replace(params, **changes)


def ua_ra(predictor: Predictor, data, split, device) -> tuple[float, float]:
    m = evaluate(predictor, data, split, device=device, controls=False)
    return m["ua"], m["ra"]


def convergence(args, device, data, original) -> list[list]:
    from mubench.methods.forget_vector import ForgetVector

    rows = []
    recipe = preset_for(args.dataset).recipe
    for scenario in ("class:0", "random:10"):
        kind = scenario.split(":")[0]
        split = get_split(None, data, scenario, 0)
        task = build_task(data, split, original.model, "small_cnn", recipe, 0, device)
        methods = {"fixed 100 epochs": ForgetVector(fv_params(args.dataset, kind, epochs=100, tol=0.0))}
        default_tol = fv_params(args.dataset, kind).tol
        for tol in sorted({default_tol, *args.tols}):
            label = f"tol {tol:g}" + (" (default)" if tol == default_tol else "")
            methods[label] = ForgetVector(fv_params(args.dataset, kind, epochs=100, tol=tol))
        out = {}
        ways = {name: (lambda m=m, name=name, out=out, task=task: out.__setitem__(name, m.unlearn(task)))
                for name, m in methods.items()}
        seconds = interleaved(ways, args.repeats, device, warmup=False)
        fixed_ua, fixed_ra = ua_ra(out["fixed 100 epochs"], data, split, device)
        for name in methods:
            if name == "fixed 100 epochs":
                continue
            stop_ua, stop_ra = ua_ra(out[name], data, split, device)
            epochs = out[name].info["epochs_run"]
            speedup = seconds["fixed 100 epochs"] / seconds[name]
            figures = {"seconds": {"fixed": round(seconds["fixed 100 epochs"], 3), "stop": round(seconds[name], 3)},
                       "epochs_run": epochs, "tol": methods[name].params.tol, "default_tol": default_tol,
                       "ua": {"fixed": fixed_ua, "stop": stop_ua}, "ra": {"fixed": fixed_ra, "stop": stop_ra},
                       "dataset": data.name, "scenario": scenario}
            record("fv_convergence", args, device, figures, speedup, model="small_cnn")
            rows.append([scenario, name, seconds["fixed 100 epochs"], seconds[name], epochs, speedup,
                         f"{fixed_ua:.1f} / {stop_ua:.1f}", f"{fixed_ra:.1f} / {stop_ra:.1f}",
                         max(abs(fixed_ua - stop_ua), abs(fixed_ra - stop_ra))])
        print(f"convergence {scenario}: done", flush=True)
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--tols", default="0.003,0.01", help="looser tol values to sweep besides the default")
    p.set_defaults(repeats=2)
    args = p.parse_args()
    args.tols = [float(t) for t in args.tols.split(",") if t]
    device = setup(args)
    from mubench.plugins import load_plugins

    load_plugins(())
    data = cached_dataset(args.dataset)
    original = get_original(None, data, "small_cnn", preset_for(args.dataset).recipe, 0, device, progress=False)
    conv = convergence(args, device, data, original)
    print(f"\nForget vector on {data.name} (small CNN, seed 0; {device}, {args.threads} thread(s), medians of "
          f"{args.repeats}): fixed 100-epoch schedule vs convergence stop")
    print(table(["scenario", "stop", "fixed s", "stop s", "epochs run", "speedup", "UA fixed / stop",
                 "RA fixed / stop", "max |Δ| (points)"], conv))


if __name__ == "__main__":
    main()
