"""The fixed cost around one job, and mubench's FT job against a reference-style FT job.

A CIFAR-shaped task: Fashion-MNIST (Debian's dataset-fashion-mnist) padded 28→32, repeated to
3 channels and written in the real CIFAR-10 python-pickle layout (`cifar-10-batches-py/
data_batch_1..5`, `test_batch`, `batches.meta`), so `--datasets cifar10 --data-root DIR` reads
it through torchvision's reader. The first `--train` training and `--test` test images are used
(defaults 10,000 / 2,000: a CPU-sized subset). ResNet-20, `class:0`, seed 0, a 1-epoch
original and Retrain (`recipe.epochs=1`), FT for 1 epoch (`finetune.epochs=1`).

Measured, each `mubench run` a fresh process timed from start to exit:
1. the whole 3-job run into a fresh results root, per `--jobs` setting (default, 1, 2);
2. a rerun in which only the FT job is new (a copy of a finished root, `finetune.lr` changed),
   per `--jobs` setting;
3. a reference-style FT job written here after the OPTML `main_forget.py` path: torchvision
   CIFAR10 datasets and DataLoaders with PIL → ToTensor/Normalize transforms, 1 FT epoch in a
   standard DataLoader loop, UA/RA/TA through DataLoaders, and the SVC attack fitted once per
   feature (correctness, confidence, entropy, m-entropy, prob), as the reference does;
then the ratio (3) / (2 at the default --jobs).

`--ratio` measures instead the issue-27 target: (wall seconds of the FT-only rerun, default
--jobs) / (that FT job's own RTE, `rte_s` of its record), with where the rest goes (the FT
job's Unlearn record beyond its RTE, its Evaluate job, and the process outside both), per
checkout named by `--checkouts` (default: this one; e.g. a worktree of the commit before a
change, interleaved with this one repeat by repeat), from one finished results root (`--base`,
filled first if empty).
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, parser, record, run_mubench, setup, table

FMNIST = Path("/usr/share/datasets/fashion-mnist")
JOBS = {"default": [], "1": ["--jobs", "1"], "2": ["--jobs", "2"]}


def _idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(stem: str) -> Path:
    for name in (stem, f"{stem}.gz"):
        if (FMNIST / name).is_file():
            return FMNIST / name
    raise SystemExit(f"{FMNIST}/{stem}[.gz] not found: apt-get install dataset-fashion-mnist")


def write_cifar_like(root: Path, n_train: int, n_test: int) -> Path:
    """Fashion-MNIST as CIFAR-10 pickles under root/cifar-10-batches-py (returns root)."""
    folder = root / "cifar-10-batches-py"
    if (folder / "test_batch").is_file():
        return root
    folder.mkdir(parents=True, exist_ok=True)

    def rgb32(images: np.ndarray) -> np.ndarray:  # (N, 28, 28) → (N, 3*32*32), CIFAR's row layout
        padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
        return np.repeat(padded[:, None], 3, axis=1).reshape(len(images), -1)

    x = rgb32(_idx(_find("train-images-idx3-ubyte"))[:n_train])
    y = _idx(_find("train-labels-idx1-ubyte"))[:n_train].tolist()
    for i, part in enumerate(np.array_split(np.arange(n_train), 5)):
        batch = {"batch_label": f"training batch {i + 1} of 5", "labels": [y[j] for j in part],
                 "data": x[part], "filenames": [f"fmnist_{j}.png" for j in part]}
        with open(folder / f"data_batch_{i + 1}", "wb") as f:
            pickle.dump(batch, f)
    tx = rgb32(_idx(_find("t10k-images-idx3-ubyte"))[:n_test])
    ty = _idx(_find("t10k-labels-idx1-ubyte"))[:n_test].tolist()
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"batch_label": "testing batch 1 of 1", "labels": ty, "data": tx,
                     "filenames": [f"fmnist_t{j}.png" for j in range(n_test)]}, f)
    names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": n_train // 5, "num_vis": 3072}, f)
    return root


def grid_args(data_root: Path, *extra: str) -> list[str]:
    return ["--datasets", "cifar10", "--data-root", str(data_root), "--models", "resnet20",
            "--scenarios", "class:0", "--seeds", "0", "--methods", "finetune",
            "--set", "recipe.epochs=1", "--set", "finetune.epochs=1", *extra]


# ---------------------------------------------------------------------------------------------
# The reference-style FT job (our code, after OPTML's main_forget.py)


def reference_ft(data_root: Path, original_state: dict, threads: int) -> dict:
    """Load, FT 1 epoch, UA/RA/TA and the five-feature SVC attack, the reference's way."""
    import torch
    import torch.nn.functional as F
    from sklearn.svm import SVC
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from mubench.models import ModelSpec, build_model

    torch.set_num_threads(threads)
    times: dict[str, float] = {}
    t = time.perf_counter()

    class CIFAR10(datasets.CIFAR10):  # these files are not the official ones: skip the md5 check
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]

    mean = original_state["normalize.mean"].flatten().tolist()  # the data's statistics, as the
    std = original_state["normalize.std"].flatten().tolist()  # reference hard-codes CIFAR's
    norm = transforms.Normalize(mean, std)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), norm])
    test_tf = transforms.Compose([transforms.ToTensor(), norm])
    train = CIFAR10(str(data_root), train=True, transform=train_tf)
    train_eval = CIFAR10(str(data_root), train=True, transform=test_tf)
    test = CIFAR10(str(data_root), train=False, transform=test_tf)
    targets = np.asarray(train.targets)
    forget_idx, retain_idx = np.flatnonzero(targets == 0), np.flatnonzero(targets != 0)
    model = build_model("resnet20", ModelSpec(10, 3, 32, (0.0,) * 3, (1.0,) * 3))  # Normalize is a transform
    model.load_state_dict({k: v for k, v in original_state.items() if not k.startswith("normalize.")}, strict=False)
    times["load"] = time.perf_counter() - t

    t = time.perf_counter()
    loader = DataLoader(Subset(train, retain_idx), batch_size=256, shuffle=True, num_workers=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _ = loss.item()  # the reference logs every step
    times["ft_epoch"] = time.perf_counter() - t

    def probs(ds) -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        out, labels = [], []
        with torch.no_grad():
            for x, y in DataLoader(ds, batch_size=256, shuffle=False):
                out.append(F.softmax(model(x), dim=-1))
                labels.append(y)
        return torch.cat(out), torch.cat(labels)

    t = time.perf_counter()
    acc = {}
    for name, ds in (("forget", Subset(train_eval, forget_idx)), ("retain", Subset(train_eval, retain_idx)),
                     ("test", test)):
        p, y = probs(ds)
        acc[name] = float((p.argmax(1) == y).float().mean() * 100)
    times["accuracy"] = time.perf_counter() - t

    t = time.perf_counter()
    shadow_in = probs(Subset(train_eval, retain_idx[: len(test)]))
    shadow_out = probs(test)
    target = probs(Subset(train_eval, forget_idx))
    times["mia_forward"] = time.perf_counter() - t

    def features(p, y):
        conf = p.gather(1, y[:, None]).squeeze(1)
        logp = torch.log(p.clamp_min(1e-30))
        ent = -(p * logp).sum(1)
        one_hot = F.one_hot(y, p.shape[1]).bool()
        log_1mp = torch.log((1 - p).clamp_min(1e-30))
        m_ent = -(torch.where(one_hot, (1 - p) * logp, p * log_1mp)).sum(1)
        corr = (p.argmax(1) == y).float()
        return {"correctness": corr[:, None], "confidence": conf[:, None], "entropy": ent[:, None],
                "m_entropy": m_ent[:, None], "prob": p}

    t = time.perf_counter()
    f_in, f_out, f_target = features(*shadow_in), features(*shadow_out), features(*target)
    mia = {}
    for name in f_in:
        x = torch.cat([f_in[name], f_out[name]]).numpy()
        y = np.concatenate([np.ones(len(f_in[name])), np.zeros(len(f_out[name]))])
        clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
        mia[name] = float(1 - clf.predict(f_target[name].numpy()).mean()) * 100
    times["svc_fits"] = time.perf_counter() - t
    return {"times": times, "accuracy": acc, "mia": mia}


def original_state(root: Path) -> dict:
    """The original model's state dict from a finished mubench root (what FT starts from)."""
    import torch

    paths = sorted((root / "artifacts" / "original").glob("*.pt"))
    if not paths:
        raise SystemExit(f"no original model artifact under {root}/artifacts/original")
    state = torch.load(paths[0], map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def reference_process(data_root: Path, base: Path, threads: int) -> dict:
    """The reference-style job as its own process (start-up and imports included, like a
    `mubench run`); its parts are timed inside."""
    code = ("import json, sys; from pathlib import Path; import job_overhead as j; "
            f"print(json.dumps(j.reference_ft(Path({str(data_root)!r}), j.original_state(Path({str(base)!r})), {threads})))")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the reference-style job failed:\n{done.stderr[-2000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": seconds}


def rerun_parts(checkout: Path, data_root: Path, base: Path, root: Path) -> dict:
    """The FT-only rerun of `base` (a copy, `finetune.lr` changed) by the mubench of `checkout`,
    timed from process start to exit, and its FT job's times from the records it wrote."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(base, root)
    old = {p.name for p in (root / "records" / "method").glob("*.json")}
    cmd = [sys.executable, "-m", "mubench", "run", *grid_args(data_root, "--set", "finetune.lr=0.02"),
           "--out", str(root), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    new = [p for p in (root / "records" / "method").glob("*.json") if p.name not in old]
    if len(new) != 1:
        raise SystemExit(f"the rerun wrote {len(new)} new method records, not 1 (was {base} finished?)")
    evaluated = json.loads(new[0].read_text())
    unlearned = json.loads((root / "records" / "unlearn" / f"{evaluated['unlearn_key']}.json").read_text())
    rte, job = unlearned["rte_s"], unlearned["wall_s"]
    return {"wall_s": wall, "rte_s": rte, "unlearn_beyond_rte_s": job - rte, "evaluate_s": evaluated["wall_s"] - job,
            "outside_jobs_s": wall - evaluated["wall_s"], "ratio": wall / rte,
            "metrics": {k: evaluated.get(k) for k in ("ua", "ra", "ta", "mia_efficacy", "avg_gap")}}


def ratio_main(args, device, work: Path, data_root: Path) -> None:
    base = Path(args.base) if args.base else work / "full-default-0"
    if not (base / "records" / "method").is_dir():
        seconds, counts = run_mubench(grid_args(data_root), base)
        print(f"filled {base}: {seconds:.1f} s {counts}", flush=True)
    checkouts = [Path(c).resolve() for c in (args.checkouts or str(Path(__file__).resolve().parent.parent)).split(",")]
    runs: dict[str, list[dict]] = {str(c): [] for c in checkouts}
    for rep in range(args.repeats):
        for i, checkout in enumerate(checkouts):
            r = rerun_parts(checkout, data_root, base, work / f"ratio-{i}")
            r["load_avg_1m"] = os.getloadavg()[0]
            runs[str(checkout)].append(r)
            print(f"{checkout} repeat {rep}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items() if k != "metrics")
                  + f" {r['metrics']}", flush=True)
    keys = ("wall_s", "rte_s", "unlearn_beyond_rte_s", "evaluate_s", "outside_jobs_s", "ratio")
    med = {c: {k: statistics.median(r[k] for r in rs) for k in keys} for c, rs in runs.items()}
    print(table(["checkout", "rerun s", "FT RTE s", "Unlearn beyond RTE s", "Evaluate s", "outside jobs s", "ratio"],
                [[Path(c).name, *(m[k] for k in keys)] for c, m in med.items()]))
    record("job_overhead_ratio", args, device, {"runs": runs, "medians": med, "train": args.train, "test": args.test,
                                               "base": str(base)}, med[str(checkouts[-1])]["ratio"])


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=10000, help="training images (of Fashion-MNIST's 60,000)")
    p.add_argument("--test", type=int, default=2000, help="test images (of 10,000)")
    p.add_argument("--work", default=None, help="folder for the data and results roots (default: a temp dir)")
    p.add_argument("--full-repeats", type=int, default=1, help="repeats of the whole 3-job run per --jobs")
    p.add_argument("--jobs", default="default,1,2", help="--jobs settings to compare (default,1,2)")
    p.add_argument("--ratio", action="store_true", help="measure rerun wall / FT RTE instead (see above)")
    p.add_argument("--base", default=None, help="--ratio: a finished results root of this grid (default: WORK/full-default-0)")
    p.add_argument("--checkouts", default=None, help="--ratio: comma-separated mubench checkouts to compare (default: this one)")
    args = p.parse_args()
    device = setup(args)
    work = Path(args.work or tempfile.mkdtemp(prefix="mubench-overhead-"))
    data_root = write_cifar_like(work / "data", args.train, args.test)
    if args.ratio:
        return ratio_main(args, device, work, data_root)
    settings = [s for s in args.jobs.split(",") if s]
    full: dict[str, list[float]] = {s: [] for s in settings}
    for rep in range(args.full_repeats):
        for s in settings:
            root = work / f"full-{s}-{rep}"
            shutil.rmtree(root, ignore_errors=True)
            seconds, counts = run_mubench(grid_args(data_root, *JOBS[s]), root)
            full[s].append(seconds)
            print(f"full run, --jobs {s}: {seconds:.1f} s {counts}", flush=True)
    base = work / f"full-{settings[0]}-0"
    ft: dict[str, list[float]] = {s: [] for s in settings}
    ref: list[dict] = []
    original_state(base)  # fail early if the run left no original
    for _ in range(args.repeats):
        for s in settings:
            root = work / f"ft-{s}"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(base, root)
            seconds, counts = run_mubench(grid_args(data_root, *JOBS[s], "--set", "finetune.lr=0.02"), root)
            ft[s].append(seconds)
            print(f"FT-only rerun, --jobs {s}: {seconds:.1f} s {counts}", flush=True)
        ref.append(reference_process(data_root, base, args.threads))
        print(f"reference-style FT job: {ref[-1]['seconds']:.1f} s {ref[-1]['times']}", flush=True)
    med = statistics.median
    ref_s = med(r["seconds"] for r in ref)
    ft_med = {s: med(v) for s, v in ft.items()}
    best = min(ft_med.values())
    rows = [[f"--jobs {s}", med(full[s]), ft_med[s], ft_med[s] / best, ref_s / ft_med[s]] for s in settings]
    print(table(["jobs", "3-job run s", "FT-only rerun s", "vs best FT-only", "reference / FT-only"], rows))
    parts = {k: med(r["times"][k] for r in ref) for k in ref[0]["times"]}
    print("reference-style parts (median s):", {k: round(v, 2) for k, v in parts.items()})
    figures = {"full_s": full, "ft_only_s": ft, "reference_s": [r["seconds"] for r in ref], "reference_parts_s": parts,
               "reference_metrics": ref[-1]["accuracy"] | {f"mia_{k}": v for k, v in ref[-1]["mia"].items()},
               "train": args.train, "test": args.test}
    default = settings[0]
    record("job_overhead", args, device, figures, ref_s / ft_med[default],
           default_vs_best=ft_med[default] / best)
    print("machine:", machine(device, args.threads)["cpu"], "work dir:", work)


if __name__ == "__main__":
    sys.exit(main())
