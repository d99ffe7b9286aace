"""Training of one genome: `Trainer.fit(genome, seed) -> medseg_nas.results.TrialResult` (see trainer.py)."""

from medseg_nas.train.trainer import Precision, Trainer, TrialFailure, precision_for

__all__ = ["Trainer", "TrialFailure", "Precision", "precision_for"]
