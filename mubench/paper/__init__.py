"""Paper tables: `reports/paper/*.toml` specs → the runner's jobs → tables in the paper's layout.

A spec declares one table of the forget-vector paper (Sun et al., arXiv 2412.16780): the grid
(an experiment config without `methods`), the rows (methods in the paper's order, with paper
labels and optional per-row parameters, so one method can fill several rows), the blocks
(groups of scenarios aggregated into one sub-table, e.g. every `class:*` scenario), the metric
columns, per-preset overrides (`quick`: a CPU-sized stand-in; `full`: the paper's setting) and
optional reference numbers with their source. The format is documented in docs/paper-tables.md.

Jobs are the runner's own (`build_plan`), so a paper table shares cached originals, Retrains
and method runs with `mubench run` on the same results root. Rows are matched to records by
job key, never by name, so a record of another grid cannot leak into a table.

Aggregation (what the paper does for class-wise forgetting: average over the forgotten
classes): every cell pools the ok jobs of its block — all (scenario, seed) pairs — and shows
their mean ± std (ddof 1). With every class run on every seed, the mean equals the mean over
classes of the per-class seed means. Avg. Gap is computed per job against the Retrain of the
same scenario and seed (report.with_gaps) before pooling; RTE × Retrain likewise per job.
"""

from .spec import (
    COLUMNS,
    PRESETS,
    SPEC_DIR,
    Block,
    PaperPlan,
    PaperSpec,
    Row,
    find_spec,
    load_spec,
    passes,
    plan_table,
    preset_config,
    spec_files,
)
from .tables import (
    Rendered,
    banner,
    block_stats,
    job_frame,
    layout_tables,
    render,
    table_notes,
    write_outputs,
)

__all__ = ["COLUMNS", "PRESETS", "SPEC_DIR", "Block", "PaperPlan", "PaperSpec", "Rendered", "Row", "banner",
           "block_stats", "find_spec", "job_frame", "layout_tables", "load_spec", "passes", "plan_table",
           "preset_config", "render", "spec_files", "table_notes", "write_outputs"]
