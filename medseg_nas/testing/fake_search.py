"""Driver-side helpers for the runner tests: a tiny seeded strategy, a whole fake search and a
read-only count of a live store's finished trials.

The trial functions live in fake_trials.py (torch-free, for worker processes); they are
re-exported here so a runner test imports one module.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from medseg_nas.testing.fake_trials import (  # noqa: F401 - re-exported for the tests
    always_dies_trial,
    analytic_trial,
    dies_once_trial,
    failing_trial,
    flaky_trial,
    gated_trial,
    raising_trial,
)
from medseg_nas.space.genome import Genome, SearchSpace


class TinyRandomStrategy:
    """A seeded random strategy with the Strategy protocol, for runner tests.

    `repeat` > 0 re-asks one of the last `repeat` genomes every other ask (to exercise dedupe).
    """

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0, repeat: int = 0) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.repeat = repeat
        self.asked: list[str] = []
        self.told: list[list] = []  # [genome json, objectives or None]

    def ask(self, n: int) -> list[Genome]:
        out = []
        for _ in range(n):
            if self.repeat and self.asked and self.rng.random() < 0.5:
                g = Genome.from_json(self.asked[-1 - int(self.rng.integers(min(self.repeat, len(self.asked))))])
            else:
                g = Genome.random(self.rng, self.space)
            self.asked.append(g.to_json())
            out.append(g)
        return out

    def tell(self, genome: Genome, objectives) -> None:
        self.told.append([genome.to_json(), None if objectives is None else list(objectives)])

    @property
    def done(self) -> bool:
        return False

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "asked": list(self.asked), "told": list(self.told)}

    def load_state_dict(self, d: dict) -> None:
        self.rng.bit_generator.state = d["rng"]
        self.asked = list(d["asked"])
        self.told = [list(t) for t in d["told"]]


TINY_CONFIG = {
    "name": "fake",
    "space": {"n_c": [2], "n_f": [3], "ops": ["conv3d_1", "conv3d_3", "conv2d_3", "identity"], "lr_grid": 3},
    "train": {"epochs": 4, "iters_per_epoch": 1},
    "search": {"strategy": "random", "budget_trials": 8, "seed": 0},
}


def run_fake(run_dir: str, resume: bool = False, budget: int = 8, seed: int = 0, progress: bool = False, repeat: int = 0):
    """A whole fake search (used in-process and from a subprocess that the tests kill -9)."""
    from medseg_nas.config import config_from_dict
    from medseg_nas.nas.runner import run_search

    cfg = config_from_dict(TINY_CONFIG)
    strategy = TinyRandomStrategy(SearchSpace.from_config(cfg.space), seed=seed, repeat=repeat)
    return run_search(cfg, run_dir, resume=resume, strategy=strategy, budget=budget, trial_fn=analytic_trial, progress=progress)


def front_of(summary_or_dir) -> list[tuple[str, float, float]]:
    if isinstance(summary_or_dir, (str, Path)):
        front = json.loads((Path(summary_or_dir) / "front.json").read_text())["front"]
    else:
        front = summary_or_dir.front
    return [(e["key"], round(e["f1"], 12), round(e["f2"], 12)) for e in front]


def data_probe_trial(spec):
    """An analytic trial that first builds the run's real DataBundle (checks the data wiring)."""
    from medseg_nas.nas.trial import WORKER_CONTEXTS

    ctx = WORKER_CONTEXTS.for_spec(spec)
    item = ctx.bundle.train[0]
    assert tuple(item["image"].shape[1:]) == tuple(ctx.plan.patch_size), (item["image"].shape, ctx.plan.patch_size)
    return analytic_trial(spec)


def run_named(run_dir: str, strategy: str, resume: bool = False, budget: int = 8, trial_fn=None, progress: bool = False):
    """A fake search with one of the real strategies (medseg_nas.search.make_strategy)."""
    from medseg_nas.config import config_from_dict
    from medseg_nas.nas.runner import run_search

    cfg = config_from_dict(TINY_CONFIG, overrides=[f"search.strategy={strategy}"] + STRATEGY_OVERRIDES)
    return run_search(cfg, run_dir, resume=resume, budget=budget, trial_fn=trial_fn or analytic_trial, progress=progress)


# small populations so every phase of each strategy is reached within a dozen trials
STRATEGY_OVERRIDES = [
    "search.samea.N=4",
    "search.samea.T=2",
    "search.samea.LGen=1",
    "search.samea.screen_candidates=8",
    "search.samea.surrogate_trees=20",
    "search.dmls.initial_archive_size=3",
    "search.nsga2.pop_size=4",
]


def write_search_config(path: Path, data_root: Path, run_root: Path, budget: int = 3) -> Path:
    """A YAML config for the CLI: TINY_CONFIG's space on a synthetic dataset at `data_root`."""
    import yaml

    d = json.loads(json.dumps(TINY_CONFIG))
    d["run_root"] = str(run_root)
    d["data"] = {"root": str(data_root), "patch_size": [32, 32, 8], "augment": "none"}
    d["search"]["budget_trials"] = budget
    path.write_text(yaml.safe_dump(d))
    return path


def finished_trials(db: Path) -> int:
    """Trials that ended (done or failed) in a store another process is writing; 0 while it
    cannot be read yet. Read-only, so a watcher never blocks the search it watches."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0
