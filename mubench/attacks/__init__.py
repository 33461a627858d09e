"""Membership and recovery attacks, one plugin file each (the contract is `base.py`).

Built-ins: `svc.py` (SPEC §5's population attack behind MIA-Efficacy), `refmia.py` (the
reference-model screen: offline LiRA and RMIA), `ulira.py` (U-LiRA with shadow models);
`lira_stats.py` holds their statistics. Third-party attacks register the same way from a
`--plugin` file or the `mubench.attacks` entry-point group (docs/extending.md, "An attack").
"""

from .base import (
    ATTACKS,
    Attack,
    AttackInput,
    AttackRun,
    CellJobs,
    CellModel,
    Column,
    NoParams,
    attack_order,
    cell_model,
    configure,
    degenerate_fields,
    null_bands,
    register_attack,
    report_columns,
)

__all__ = ["ATTACKS", "Attack", "AttackInput", "AttackRun", "CellJobs", "CellModel", "Column", "NoParams",
           "attack_order", "cell_model", "configure", "degenerate_fields", "null_bands", "register_attack", "report_columns"]
