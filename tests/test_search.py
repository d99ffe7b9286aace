"""Strategies on a cheap analytic objective over real genomes (no training), and the archive."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from medseg_nas.testing.analytic import SPACE, drive, f2, objectives

from medseg_nas.config import SearchConfig
from medseg_nas.errors import ConfigError
from medseg_nas.search import make_strategy
from medseg_nas.search.archive import dominates, hypervolume, knee_point, normalised_hypervolume, pareto_front
from medseg_nas.search.rank_model import LinearRankModel, normalised_ranks
from medseg_nas.search.surrogate import kendall_tau, within_run_tau
from medseg_nas.space.genome import VARIABLES, Genome


def _cfg(seed_smallest: bool = True, **dmls) -> SearchConfig:
    cfg = SearchConfig()
    cfg.seed_smallest = seed_smallest
    cfg.samea.N = 8
    cfg.samea.LGen = 1
    cfg.samea.surrogate_trees = 30
    cfg.samea.screen_candidates = 15
    for k, v in dmls.items():
        setattr(cfg.dmls, k, v)
    return cfg


def _strategy(name: str, seed: int, seed_smallest: bool = True):
    """`dmls-forest` / `dmls-linear`: DMLS with that neighbour order; `samea-adaptive`: SaMEA's adaptive rules."""
    if name == "samea-adaptive":
        cfg = _cfg(seed_smallest)
        cfg.samea.rules = "adaptive"
        return make_strategy("samea", SPACE, cfg, f2, seed)
    if name.startswith("dmls-"):
        return make_strategy("dmls", SPACE, _cfg(seed_smallest, neighbour_order=name[5:]), f2, seed)
    return make_strategy(name, SPACE, _cfg(seed_smallest), f2, seed)


# -- archive ----------------------------------------------------------------------------------


def test_pareto_front_hypervolume_and_knee_by_hand():
    F = np.array([[1.0, 4.0], [2.0, 2.0], [4.0, 1.0], [3.0, 3.0], [2.0, 2.0], [5.0, 5.0]])
    assert list(pareto_front(F)) == [2, 1, 0]  # sorted by f2; the duplicate (2,2) kept once
    # staircase below ref (5, 5): (5-1)(5-4) + (5-2)(4-2) + (5-4)(2-1) = 4 + 6 + 1
    assert hypervolume(F, (5.0, 5.0)) == pytest.approx(11.0)
    assert normalised_hypervolume(F, (0.0, 0.0), (5.0, 5.0)) == pytest.approx(11.0 / 25.0)
    assert hypervolume(np.array([[6.0, 1.0]]), (5.0, 5.0)) == 0.0
    assert knee_point(F) == 1  # the bend of the L
    assert knee_point(np.array([[0.0, 10.0], [1.0, 1.0], [10.0, 0.0], [9.0, 0.5]])) == 1
    # a concave front (no bend towards the ideal point): the balanced middle, never an extreme
    concave = np.array([[1.0, 9.30], [0.95, 9.47], [0.80, 9.60], [0.10, 9.70]])
    assert knee_point(concave) in (1, 2)
    assert knee_point(np.array([[0.5, 1.0], [0.2, 3.0]])) == 1  # two points: the more accurate
    assert dominates((1, 1), (1, 2)) and not dominates((1, 2), (1, 2)) and not dominates((0, 3), (1, 2))


def test_unknown_strategy_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown search.strategy 'grid'"):
        make_strategy("grid", SPACE, SearchConfig(), f2, 0)


# -- quality -----------------------------------------------------------------------------------


SEEDS = range(10)
BUDGET = 120


@functools.lru_cache(maxsize=None)
def _final_hv(name: str, budget: int, seed: int, seed_smallest: bool) -> float:
    return drive(_strategy(name, seed, seed_smallest), budget)[-1]


# Stated before the run (issue 27): every strategy against random search on the analytic problem,
# one budget for all (120 distinct genomes), seeds 0-9, the same initial design for every strategy
# and seed (so the pairs differ only in the search), one-sided Wilcoxon signed-rank test of the
# paired final hypervolumes, alpha 0.05, no strategy left out. Measured (a9352ac+): SaMEA and
# NSGA-II win on 10 of 10 seeds (p = 0.001 each); DMLS does not beat random search here: random
# order 8/10 (p = 0.12), LS-PON's linear order 7/10 (p = 0.16), the forest order 5/10 (p = 0.69).
# Those three are strict xfails: the claim is NOT made, and the test says so if it ever becomes true.
_NOT_SHOWN = pytest.mark.xfail(strict=True, reason="measured: not better than random search at this budget")


@pytest.mark.parametrize("name", ["samea", "nsga2", pytest.param("dmls", marks=_NOT_SHOWN),
                                  pytest.param("dmls-linear", marks=_NOT_SHOWN),
                                  pytest.param("dmls-forest", marks=_NOT_SHOWN)])
def test_strategy_beats_random_search_on_hypervolume(name):
    from scipy.stats import wilcoxon

    ours = np.array([_final_hv(name, BUDGET, s, True) for s in SEEDS])
    rand = np.array([_final_hv("random", BUDGET, s, True) for s in SEEDS])
    p = wilcoxon(ours - rand, alternative="greater").pvalue
    assert p < 0.05, (name, ours.round(3).tolist(), rand.round(3).tolist(), p)


def test_samea_learns_probabilities_and_logs_the_surrogate():
    s = _strategy("samea", 1)
    drive(s, 60)
    st = s.stats()
    assert st["phase"] == "exploitation"
    assert st["surrogate_rejected"] > 0 and st["surrogate_screened"] > st["surrogate_rejected"]
    assert st["surrogate_taus"] and all(-1.0 <= t <= 1.0 for t in st["surrogate_taus"])
    # the pooled τ is over every screened child that was trained, not one generation's 3-4
    pairs = s.pooled_pairs
    assert st["surrogate_pairs"] == len(pairs) > max(4, len(st["surrogate_taus"]))
    assert st["surrogate_tau_pooled"] == pytest.approx(kendall_tau([p for p, _ in pairs], [t for _, t in pairs]))
    assert st["surrogate_pair_values"] == [list(p) for p in pairs]  # what the bench pools over seeds
    told = {round(F[0], 12) for _, F in s.evaluated()}
    assert all(round(t, 12) in told for _, t in pairs)
    state = s.state_dict()
    del state["own"]["pooled_pairs"]  # a state saved before the pooled pairs existed still loads
    again = _strategy("samea", 1)
    again.load_state_dict(state)
    assert again.pooled_pairs == [] and again.stats()["surrogate_tau_pooled"] is None
    probs = s.selection_probabilities()
    assert all(math.isclose(sum(p), 1.0) for p in probs.values())
    assert any(max(p) > min(p) for p in probs.values())  # something was learned


def test_dmls_archive_is_the_front_of_everything_told():
    """After every tell the archive holds exactly the non-dominated objective vectors of all
    successful evaluations so far: mutually non-dominated, and missing none of the front."""
    s = _strategy("dmls", 3)
    seen, told = 0, []
    while seen < 80:
        for g in s.ask(3):
            F = None if seen % 11 == 5 else objectives(g)  # some failures too
            s.tell(g, F)
            seen += 1
            if F is not None:
                told.append(tuple(F))
            A = [(m[1], m[2]) for m in s.archive]
            assert not any(dominates(p, q) for p in A for q in A), A
            front = {F for F in told if not any(dominates(G, F) for G in told)}
            assert set(A) == front, (sorted(set(A) ^ front), seen)


@pytest.mark.parametrize("name", ["samea", "samea-adaptive", "dmls", "dmls-forest", "dmls-linear", "nsga2", "random"])
def test_failures_are_told_and_the_search_goes_on(name):
    s = _strategy(name, 0)
    hv = drive(s, 40, batch=2, fail=lambda g: g.ops.count("conv3d_5") > 0)
    assert len(hv) >= 40
    assert s.stats()["failed"] > 0


@pytest.mark.parametrize("name", ["samea", "samea-adaptive", "dmls", "dmls-forest", "dmls-linear", "nsga2", "random"])
def test_state_dict_round_trip_gives_identical_continuation(name):
    """A strategy restored from its JSON state mid-run asks exactly what the original asks."""
    a = _strategy(name, 7)
    drive(a, 30, batch=2)
    pending = [Genome.from_json(js) for js in a.pending]
    for g in pending:
        a.tell(g, objectives(g))
    state = json.loads(json.dumps(a.state_dict()))
    b = _strategy(name, 123)  # different seed: everything must come from the state
    b.load_state_dict(state)
    for _ in range(15):
        ga, gb = a.ask(2), b.ask(2)
        assert [g.key() for g in ga] == [g.key() for g in gb]
        for g in ga:
            a.tell(g, objectives(g))
            b.tell(g, objectives(g))
    sa, sb = a.state_dict(), b.state_dict()
    assert json.dumps(sa, sort_keys=True) == json.dumps(sb, sort_keys=True)


# -- DMLS first improvement, LS-PON, first-batch policy ---------------------------------------


def _hamming(a: Genome, b: Genome) -> int:
    return sum(1 for x, y in zip(a.values(), b.values()) if x != y)


def test_dmls_neighbour_dominating_the_current_solution_ends_its_neighbourhood():
    """First improvement: once a neighbour dominates the current solution, no further neighbour
    of that solution is asked; the search continues from an unvisited archive member."""
    s = make_strategy("dmls", SPACE, _cfg(initial_archive_size=1), f2, 0)
    (start,) = s.ask(1)
    assert start == Genome.smallest(SPACE)
    s.tell(start, (1.0, 10.0))
    (better,) = s.ask(1)
    assert _hamming(better, start) == 1
    s.tell(better, (0.5, 9.0))  # dominates the current solution
    assert [m[0] for m in s.archive] == [better.to_json()]
    asked = []
    for _ in range(6):
        (g,) = s.ask(1)
        asked.append(g)
        s.tell(g, (2.0, 20.0))  # dominated: nothing improves any more
    # every later ask explores the new member's neighbourhood, not the rest of the start's
    assert all(_hamming(g, better) == 1 for g in asked), [g.describe() for g in asked]
    assert s.current == better.to_json()


def test_dmls_neighbour_order_names():
    """`surrogate` is the old name of `forest` (existing configs and run dirs load); typos fail."""
    assert make_strategy("dmls", SPACE, _cfg(neighbour_order="surrogate"), f2, 0).order == "forest"
    with pytest.raises(ValueError, match="neighbour_order must be one of random, forest, linear"):
        make_strategy("dmls", SPACE, _cfg(neighbour_order="lienar"), f2, 0)


def test_normalised_ranks_by_hand():
    F = [(1.0, 4.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0), (4.0, 1.0)]
    # fronts: {0, 1, 4}, {2}, {3} → ranks 0, 0, 1, 2, 0 over the largest rank 2
    assert list(normalised_ranks(F)) == [0.0, 0.0, 0.5, 1.0, 0.0]
    assert list(normalised_ranks([(1.0, 1.0), (0.5, 2.0)])) == [0.0, 0.0]  # one front: all 0


def test_linear_rank_model_one_hot_and_learns_the_rank():
    rng = np.random.default_rng(0)
    genomes = list({g.key(): g for g in (Genome.random(rng, SPACE) for _ in range(140))}.values())
    X = LinearRankModel(SPACE).encode(genomes[:3])
    n_cols = sum(len(SPACE.choices(v)) for v in VARIABLES)
    assert X.shape == (3, n_cols) and (X.sum(axis=1) == len(VARIABLES)).all() and set(np.unique(X)) == {0.0, 1.0}
    train, test = genomes[:100], genomes[100:]
    model = LinearRankModel(SPACE).fit(train, [objectives(g) for g in train])
    truth = normalised_ranks([objectives(g) for g in genomes])[100:]
    tau = kendall_tau(model.predict(test), truth)
    assert tau is not None and tau > 0.3, tau  # ranks of unseen genomes, from one weight per value
    assert not LinearRankModel(SPACE).fit(train[:3], [objectives(g) for g in train[:3]]).ready


def test_dmls_linear_orders_neighbours_by_predicted_rank_and_logs_tau():
    s = _strategy("dmls-linear", 2)
    drive(s, 12)  # past the initial archive: at least one neighbourhood ordered by the model
    assert s.rank_model.ready
    preds = [p for _, p in s.queue if p is not None]
    assert preds and preds == sorted(preds)
    # the queue's predictions are the model's, fitted on every evaluation made before the pick
    seen = s.evaluated()[: s.rank_model.n_fitted]
    again = LinearRankModel(SPACE).fit([g for g, _ in seen], [F for _, F in seen])
    head = [Genome.from_json(js) for js, p in s.queue if p is not None][:5]
    assert np.allclose(again.predict(head), preds[:5])
    drive(s, 60)
    taus = s.stats()["surrogate_taus"]
    assert taus and all(-1.0 <= t <= 1.0 for t in taus)


def test_dmls_forest_pools_every_prediction_but_linear_does_not():
    forest, linear = _strategy("dmls-forest", 0), _strategy("dmls-linear", 0)
    drive(forest, 50)
    drive(linear, 50)
    st = forest.stats()
    assert st["surrogate_pairs"] == len(forest.pooled_pairs) >= 10
    f1 = {round(F[0], 12) for _, F in forest.evaluated()}
    assert all(round(t, 12) in f1 for _, t in forest.pooled_pairs)  # measured f1, never a rank
    assert st["surrogate_tau_pooled"] == pytest.approx(kendall_tau(*zip(*forest.pooled_pairs)))
    assert linear.stats()["surrogate_pairs"] == 0 and linear.stats()["surrogate_taus"]  # ranks move per batch


@pytest.mark.parametrize("seed_smallest", [True, False])
def test_every_strategy_starts_from_the_same_initial_design(seed_smallest):
    """The four strategies' first batches are prefixes of one list, in the same order: SaMEA's
    initial population (N = 8 here), DMLS's initial archive (7), NSGA-II's initial population (10)
    and random search's first 10 asks; the smallest genome first with search.seed_smallest, and
    nowhere forced without it. Another seed, another design."""
    from medseg_nas.search.initial_design import DESIGN_SIZE, initial_design

    smallest = Genome.smallest(SPACE)
    design = [g.key() for g in initial_design(SPACE, 0, DESIGN_SIZE, seed_smallest)]
    sizes = {"samea": 8, "dmls": 7, "nsga2": 10, "random": 10}
    for name, k in sizes.items():
        s = _strategy(name, 0, seed_smallest)
        first = []
        while len(first) < k:  # NSGA-II hands out its population in one batch; the others as asked
            asked = s.ask(k - len(first))
            assert asked, name
            first += asked
        assert [g.key() for g in first] == design[:k], name
        assert (first[0] == smallest) == seed_smallest and (smallest in first) == seed_smallest, name
        assert [g.key() for g in _strategy(name, 0, seed_smallest).ask(k)] == [g.key() for g in first][: len(
            _strategy(name, 0, seed_smallest).ask(k))], name  # seeded
    assert [g.key() for g in initial_design(SPACE, 1, DESIGN_SIZE, seed_smallest)] != design
    assert len(set(design)) == DESIGN_SIZE  # no repeats


def test_nsga2_smallest_genome_takes_part_in_selection():
    """In NSGA-II it is a member of the initial population (told to pymoo), not an extra trial."""
    s = _strategy("nsga2", 0)
    drive(s, s.pop_size + 1)
    assert s.generations == 1
    pop = s.algorithm.pop
    assert Genome.smallest(SPACE) in [s.problem.decode(x) for x in pop.get("X")]


def test_within_run_tau_compares_pairs_only_inside_their_run():
    # each run ranks its two children right, but run 2's forest predicts on another scale: one τ over
    # all four pairs would count the cross-run comparisons, which here are all discordant
    runs = [[[0.1, 0.5], [0.2, 0.6]], [[0.8, 0.1], [0.9, 0.2]], [[0.3, 0.9]], None]
    w = within_run_tau(runs)
    assert (w["concordant"], w["discordant"], w["comparable"], w["runs"]) == (2, 0, 2, 2) and w["tau"] == 1.0
    assert kendall_tau(*zip(*[p for r in runs[:2] for p in r])) < 0  # the naive pooled figure
    w = within_run_tau([[[0.1, 0.5], [0.2, 0.4], [0.3, 0.3]]] * 9)  # always reversed
    assert w["tau"] == -1.0 and w["comparable"] == 27 and w["sign_test_p"] < 0.001
    assert within_run_tau([[[0.1, 0.5], [0.1, 0.7]]])["comparable"] == 0  # a tie compares nothing
    assert within_run_tau([])["tau"] is None
