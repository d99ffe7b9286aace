"""Search strategies behind one ask/tell interface, the objectives and the Pareto archive.

`make_strategy(name, space, search_cfg, f2_of, seed)` is what the runner and the benchmarks
call; every strategy is resumable through `state_dict()` / `load_state_dict()`. The registry
below is the one list of strategies: `STRATEGIES` (its names) feeds the config's choices for
`search.strategy`, the CLI's `--strategy` and the benchmarks.
"""

from __future__ import annotations

from typing import Callable

from medseg_nas.errors import ConfigError
from medseg_nas.search.base import BaseStrategy, Strategy
from medseg_nas.space.genome import Genome, SearchSpace

# (space, search_cfg, f2_of, seed, f1_bounds) -> Strategy; each builder imports its strategy
# lazily, so the config reads the names without loading pymoo or scikit-learn
StrategyBuilder = Callable[..., Strategy]


def _samea(space, search_cfg, f2_of, seed, f1_bounds):
    from medseg_nas.search.samea import SaMEA

    return SaMEA(space, f2_of, seed, search_cfg.samea, seed_smallest=search_cfg.seed_smallest, f1_bounds=f1_bounds)


def _dmls(space, search_cfg, f2_of, seed, f1_bounds):
    from medseg_nas.search.dmls import DMLS

    return DMLS(space, f2_of, seed, search_cfg.dmls, surrogate_trees=search_cfg.dmls.surrogate_trees,
                seed_smallest=search_cfg.seed_smallest)


def _random(space, search_cfg, f2_of, seed, f1_bounds):
    from medseg_nas.search.random_search import RandomSearch

    return RandomSearch(space, f2_of, seed, seed_smallest=search_cfg.seed_smallest)


def _nsga2(space, search_cfg, f2_of, seed, f1_bounds):
    from medseg_nas.search.nsga2 import NSGA2

    return NSGA2(space, f2_of, seed, search_cfg.nsga2, seed_smallest=search_cfg.seed_smallest)


_BUILDERS: dict[str, StrategyBuilder] = {"samea": _samea, "dmls": _dmls, "random": _random, "nsga2": _nsga2}
STRATEGIES: tuple[str, ...] = tuple(_BUILDERS)


def make_strategy(
    name: str,
    space: SearchSpace,
    search_cfg,
    f2_of: Callable[[Genome], float],
    seed: int,
    f1_bounds: tuple[float, float] | None = None,
) -> Strategy:
    """The strategy `name` configured from `search_cfg` (medseg_nas.config.SearchConfig).

    `f1_bounds`: the range f1 can take under the run's objectives (the runner's reference box),
    SaMEA's fixed normalisation; None: that of the default `ObjectivesConfig`.
    """
    build = _BUILDERS.get(name)
    if build is None:
        raise ConfigError(f"unknown search.strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    return build(space, search_cfg, f2_of, seed, f1_bounds)


__all__ = ["STRATEGIES", "BaseStrategy", "Strategy", "make_strategy"]
