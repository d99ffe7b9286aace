"""Training of one genome: `Trainer.fit(genome, seed) -> TrialResult` (see trainer.py)."""

from medseg_nas.train.result import TrialResult
from medseg_nas.train.trainer import GroupInstanceNorm3d, Precision, Trainer, TrialFailure, precision_for, swap_instance_norm

__all__ = ["Trainer", "TrialResult", "TrialFailure", "Precision", "precision_for", "GroupInstanceNorm3d", "swap_instance_norm"]
