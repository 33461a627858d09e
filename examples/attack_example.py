"""A confidence-gap attack as a mubench plugin: `python -m mubench list attacks --plugin examples/attack_example.py`.

It asks how well the logit-scaled true-class confidence φ on the forget set tells the audited
predictor from the cell's Retrain (AUC over forget examples; 50: indistinguishable), and
calibrates that number with one model of its own per cell: the cell's recipe trained on the
retain set with another seed, which never saw the forget set. That model audited the same way
gives the null band (its AUC's bootstrap interval over examples): an audited AUC inside it reads
like a model that never trained on the data. A toy next to U-LiRA (mubench/attacks/ulira.py),
but a complete one: it plans its model as a cached job, scores from stored outputs only, and
declares its report columns.

    python -m mubench run --plugin examples/attack_example.py --set evaluation.attacks.conf_gap.seed=7000
    python -m mubench report --plugin examples/attack_example.py
"""

from dataclasses import dataclass

from mubench.attacks import Attack, Column, cell_model, lira_stats, register_attack
from mubench.params import Interval, param


@dataclass(frozen=True)
class ConfidenceGapParams:
    seed: int = param(7000, Interval(0, None), "training seed of the attack's own model (never a reporting seed)")


@register_attack("conf_gap")
class ConfidenceGap(Attack):
    """Confidence-gap AUC of the audited predictor against Retrain, with a never-trained-on-D_f null band."""

    label = "confidence-gap AUC against Retrain (example plugin)"
    Params = ConfidenceGapParams
    columns = {
        "conf_gap_auc": Column("Conf-gap AUC", "50", summary=True, null=("conf_gap_null_lo", "conf_gap_null_hi")),
        "conf_gap_null_lo": Column("Conf-gap null low"),
        "conf_gap_null_hi": Column("Conf-gap null high"),
    }

    def jobs(self, cell):
        # One model per cell, shared by every method of the cell (the same job, so the same key).
        return (cell_model(cell, owner=self.name, seed=self.params.seed),)

    def score(self, inp):
        def phi(outputs):
            return lira_stats.phi(outputs.forget.logits, outputs.forget.labels)

        retrain = phi(inp.retrain)
        (model,) = inp.models
        low, high = lira_stats.bootstrap_ci(phi(inp.outputs_of(model)), retrain, lira_stats.auc, seed=inp.seed)
        return {"conf_gap_auc": lira_stats.auc(phi(inp.outputs), retrain),
                "conf_gap_null_lo": low, "conf_gap_null_hi": high}
