"""The search problem: what one search optimises, built once from a config and a run directory.

The runner, the benchmarks and the tests used to assemble the same pieces inline (the data
context, the space, f2, the reference box, a TrialSpec for the trial function); here they are
built in one place, in one order, so a benchmark evaluates a genome exactly as a search trial
does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medseg_nas.config import Config, config_to_dict
from medseg_nas.nas.executors import TrialSpec
from medseg_nas.nas.genome_costs import GenomeCosts
from medseg_nas.nas.trial import WORKER_CONTEXTS, SearchContext, WorkerContext, prepare_data, train_trial
from medseg_nas.results import TrialResult
from medseg_nas.search.objectives import reference_box
from medseg_nas.space.genome import Genome, SearchSpace


@dataclass
class SearchProblem:
    """The space, the data context (channels, classes, plan), f2 of any genome, the reference box
    of the hypervolume, and how one genome is evaluated (a `TrialSpec` for the trial function)."""

    cfg: Config
    run_dir: Path
    ctx: SearchContext
    space: SearchSpace
    costs: GenomeCosts
    box: tuple

    @classmethod
    def build(cls, cfg: Config, run_dir, told_f2: dict[str, float] | None = None, with_data: bool = True) -> SearchProblem:
        """`told_f2`: f2 by genome key of trials already done (read back on resume); `with_data`
        False for a dataless search whose injected trial function needs no data (tests, dry runs)."""
        ctx = prepare_data(cfg, Path(run_dir)) if with_data else SearchContext()
        costs = GenomeCosts(cfg, ctx, dict(told_f2 or {}))
        box = reference_box(cfg, ctx.in_channels, ctx.n_classes, ctx.network_plan, costs.f2_of)
        return cls(cfg, Path(run_dir), ctx, SearchSpace.from_config(cfg.space), costs, box)

    def f2_of(self, genome: Genome) -> float:
        return self.costs.f2_of(genome)

    @property
    def f1_bounds(self) -> tuple[float, float]:
        """f1's range in the reference box: SaMEA's fixed normalisation of f1."""
        return self.box[0][0], self.box[1][0]

    def make_strategy(self, name: str | None = None, search_cfg=None, seed: int | None = None):
        """The strategy `name` (default: the config's) over this problem's space, f2 and f1 range."""
        from medseg_nas.search import make_strategy

        search_cfg = search_cfg or self.cfg.search
        return make_strategy(name or search_cfg.strategy, self.space, search_cfg, self.f2_of,
                             search_cfg.seed if seed is None else seed, f1_bounds=self.f1_bounds)

    def spec(self, trial_id: int, genome: Genome | None, seed: int | None = None, log_dir: str | None = None) -> TrialSpec:
        """The TrialSpec a worker trains `genome` from (no genome: only to reach the run's data)."""
        return TrialSpec(trial_id=trial_id, genome=genome.to_json() if genome is not None else "",
                         seed=int(self.cfg.train.seed) if seed is None else int(seed), run_dir=str(self.run_dir),
                         config=config_to_dict(self.cfg), context=self.ctx.spec_context, log_dir=log_dir)

    def worker_data(self) -> WorkerContext:
        """The run's datalist, split, plan and DataBundle as a trial worker in this process has them."""
        return WORKER_CONTEXTS.for_spec(self.spec(0, None))

    def evaluate(self, genome: Genome, trial_id: int = 0, seed: int | None = None) -> TrialResult:
        """Train `genome` in this process exactly as a search trial would (no store, no strategy)."""
        return train_trial(self.spec(trial_id, genome, seed))
