"""Compare every record of two results roots, key by key, ignoring what timing and the layout set.

    python experiments/house/compare_records.py BEFORE_ROOT AFTER_ROOT

Used to show that a refactor left records and keys as they were: same set of keys per record
kind, and per key the same fields with the same values (floats to 1e-9), apart from wall-clock
and date fields. Prints one line per kind and every difference; exit 1 if any.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

VOLATILE = {"started", "finished", "wall_s", "rte_s", "rte_rel", "seconds", "bank_s", "n_jobs",
            "traceback_file", "ulira_shadow_train_s", "ulira_shadow_unlearn_s", "versions"}


def _volatile(name: str) -> bool:
    return name in VOLATILE or name.endswith("_s")


def _records(root: Path) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for path in sorted((root / "records").glob("*/*.json")):
        out.setdefault(path.parent.name, {})[path.stem] = json.loads(path.read_text())
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
        except (TypeError, ValueError):
            return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def compare(before: Path, after: Path) -> list[str]:
    old, new = _records(before), _records(after)
    problems = []
    for kind in sorted(set(old) | set(new)):
        a, b = old.get(kind, {}), new.get(kind, {})
        print(f"{kind}: {len(a)} before, {len(b)} after, {len(set(a) & set(b))} keys in both")
        problems += [f"{kind} {k}: only before" for k in sorted(set(a) - set(b))]
        problems += [f"{kind} {k}: only after" for k in sorted(set(b) - set(a))]
        for key in sorted(set(a) & set(b)):
            ra, rb = a[key], b[key]
            fields = {f for f in set(ra) | set(rb) if not _volatile(f)}
            for f in sorted(fields):
                if not _same(ra.get(f), rb.get(f)):
                    problems.append(f"{kind} {key} {f}: {ra.get(f)!r} → {rb.get(f)!r}")
    return problems


if __name__ == "__main__":
    problems = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    for line in problems:
        print(line)
    print("identical" if not problems else f"{len(problems)} differences")
    sys.exit(1 if problems else 0)
