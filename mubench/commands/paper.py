"""`mubench paper [NAME]`: run the missing jobs of one paper table and render it in the
paper's layout (Markdown + LaTeX); `--list` shows the tables (reports/paper/*.toml)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "paper", help="reproduce a table of the forget-vector paper (reports/paper/*.toml)",
        description="Run the jobs of one table of the forget-vector paper (Sun et al., arXiv "
        "2412.16780) that are not cached yet, then render the table in the paper's layout. "
        "--preset quick runs a CPU-sized stand-in (smaller data and model, fewer epochs and "
        "seeds), labelled as such on every table; --preset full is the paper's setting (a GPU job).")
    p.add_argument("name", nargs="?", metavar="NAME", help="table name (see --list) or a spec .toml file")
    p.add_argument("--list", action="store_true", help="list the paper tables and exit")
    p.add_argument("--preset", choices=("quick", "full"), default="full",
                   help="quick: CPU stand-in; full: the paper's setting (default: full)")
    p.add_argument("--results", metavar="DIR", help="results root (default: the spec's, e.g. results/paper-quick)")
    p.add_argument("--out", metavar="DIR", help="where the tables go (default: RESULTS/paper)")
    p.add_argument("--spec-dir", metavar="DIR", help="folder of spec files (default: reports/paper)")
    p.add_argument("--jobs", type=int, help="parallel workers (default: the spec's, else one per CPU core)")
    p.add_argument("--backend", choices=("loky", "dask", "sequential"), help="default: the spec's, else loky")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--dry-run", action="store_true", help="print the jobs that would run and exit")
    p.add_argument("--no-run", action="store_true", help="render from the existing records only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mubench import paper
    from mubench.config import with_overrides
    from mubench.errors import ConfigError
    from mubench.runner import describe_plan, execute
    from mubench.store import Store, write_json_atomic

    spec_dir = Path(args.spec_dir) if args.spec_dir else paper.SPEC_DIR
    if args.list:
        for path in paper.spec_files(spec_dir):
            spec = paper.load_spec(path)
            print(f"{spec.name:24s} {spec.title}")
            print(f"{'':24s}   mirrors: {spec.mirrors}")
        return 0
    if not args.name:
        raise ConfigError("name a paper table (python -m mubench paper --list shows them)")
    spec = paper.load_spec(paper.find_spec(args.name, spec_dir))
    pplan = paper.plan_table(spec, args.preset, out=args.results)
    config = with_overrides(pplan.config, execution_jobs=args.jobs, execution_backend=args.backend,
                            execution_device=args.device)
    pplan.config = config
    if args.dry_run:
        print(paper.banner(spec, args.preset, config))
        for line in describe_plan(pplan.plan):
            print(line)
        return 0
    store = Store(config.out)
    failed = 0
    if not args.no_run:
        store.check_writable()
        write_json_atomic(store.root / "paper" / f"{spec.name}-{args.preset}.config.json", config.to_dict())
        result = execute(pplan.plan, config, progress=False if args.quiet else None)
        failed = len(result.failed)
        print(f"{result.ran} jobs run, {result.cached} cached, {failed} failed in {result.seconds:.1f} s",
              file=sys.stderr)
    rendered = paper.render(spec, args.preset, pplan)
    out = Path(args.out) if args.out else store.root / "paper"
    paths = paper.write_outputs(spec, args.preset, rendered, out)
    print(rendered.markdown)
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    if failed:
        print(f"{failed} job(s) failed; tracebacks under {store.root}/logs/", file=sys.stderr)
        return 1
    return 0
