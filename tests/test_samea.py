"""SaMEA's rules one at a time, against hand-computed values (the authors' Search/SaMEA_Algorithm.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medseg_nas.testing.analytic import SPACE, f2, objectives

from medseg_nas.config import SearchConfig, config_from_dict
from medseg_nas.errors import ConfigError
from medseg_nas.search import make_strategy
from medseg_nas.search.samea_rules import (
    best_n_nsga2,
    deferred_to_train,
    mutation_probability,
    neighbourhoods,
    pbi,
    subproblem_probabilities,
    value_probabilities,
    weight_vectors,
)
from medseg_nas.space.genome import OPS, VARIABLES, Genome


def _samea(seed: int = 0, seed_smallest: bool = True, **samea):
    cfg = SearchConfig()
    cfg.seed_smallest = seed_smallest
    cfg.samea.surrogate_trees = 20
    for k, v in samea.items():
        setattr(cfg.samea, k, v)
    return make_strategy("samea", SPACE, cfg, f2, seed)


def _set_population(s, genomes_F):
    """Skip the initial generation: population = given (genome, (f1, f2)), generation 1."""
    for g, F in genomes_F:
        s.tell(g, F)  # into the history (not in flight: the population is set by hand below)
    s.population = [[g.to_json(), F[0], F[1]] for g, F in genomes_F]
    s.queue, s.inflight, s.pending = [], [], []
    s._start_generation(1)


# -- weights, neighbourhoods, PBI ----------------------------------------------------------------


def test_weight_vectors_cover_only_the_accuracy_half():
    W = weight_vectors(10, 0.5)
    assert np.allclose(W[:, 0], [0.5 + i * 0.5 / 9 for i in range(10)]) and np.allclose(W.sum(axis=1), 1.0)
    assert tuple(W[-1]) == (1.0, 0.0)
    s = _samea()
    assert s.theta == 0.001 and s.weights[:, 0].min() == pytest.approx(0.5)  # the paper defaults
    a = _samea(rules="adaptive")
    assert a.theta == 5.0 and a.weights[:, 0].min() == 0.0 and a.weights[:, 0].max() == 1.0


def test_neighbourhoods_are_the_T_nearest_weight_vectors():
    B = neighbourhoods(weight_vectors(10, 0.5), 3)
    assert B[0] == [0, 1, 2] and sorted(B[5]) == [4, 5, 6] and B[5][0] == 5 and B[9] == [9, 8, 7]


def test_pbi_by_hand():
    # w = (1, 0): d1 = 0.3, d2 = 0.4; w = (0.6, 0.8): on the ray, d1 = |F| = 0.5, d2 = 0
    F = np.array([[0.3, 0.4]])
    assert pbi(F, np.array([1.0, 0.0]), 0.001)[0] == pytest.approx(0.3 + 0.001 * 0.4)
    assert pbi(F, np.array([3.0, 4.0]), 5.0)[0] == pytest.approx(0.5)
    w = np.array([0.5, 0.5])  # d1 = 0.7/√2, d2 = |(0.3, 0.4) − (0.35, 0.35)| = √0.005
    assert pbi(F, w, 2.0)[0] == pytest.approx(0.7 / math.sqrt(2) + 2.0 * math.sqrt(0.005))


def test_fixed_normalisation_bounds():
    """f1 by [0, (α+1)·C + β] (1.5 with the defaults), f2 by the smallest and largest network;
    they do not move with what has been evaluated."""
    s = _samea()
    big = Genome(inputs=(0, 1, 2), ops=("conv3d_5",) * 4, n_c=4, n_f=5)
    assert tuple(s.lo) == pytest.approx((0.0, f2(Genome.smallest(SPACE))))
    assert tuple(s.hi) == pytest.approx((1.5, f2(big)))
    assert tuple(_samea().hi) == tuple(make_strategy("samea", SPACE, SearchConfig(), f2, 0, f1_bounds=(0.0, 1.5)).hi)
    assert make_strategy("samea", SPACE, SearchConfig(), f2, 0, f1_bounds=(0.0, 2.0)).hi[0] == 2.0
    from medseg_nas.config import ObjectivesConfig
    from medseg_nas.search.samea import DEFAULT_F1_BOUNDS

    o = ObjectivesConfig()  # the constant SaMEA falls back on is the config's default range
    assert DEFAULT_F1_BOUNDS == (0.0, (o.alpha + 1.0) * o.C + o.beta)
    mid = np.array([[0.75, (s.lo[1] + s.hi[1]) / 2]])  # normalised (0.5, 0.5)
    before = [s._g(mid, i)[0] for i in range(s.N)]
    s.tell(Genome(ops=("conv3d_3",) * 4), (0.2, 9.0))
    s.tell(Genome(ops=("conv2d_3",) * 4), (0.9, 12.0))
    after = [s._g(mid, i)[0] for i in range(s.N)]
    assert before == after
    for i, w in enumerate(s.weights):
        u = w / np.linalg.norm(w)
        d1 = 0.5 * u.sum()
        assert after[i] == pytest.approx(d1 + 0.001 * np.linalg.norm(0.5 - d1 * u))


def test_adaptive_normalisation_follows_the_evaluated_front():
    s = _samea(rules="adaptive")
    s.tell(Genome.smallest(SPACE), (1.0, 10.0))
    s.tell(Genome(ops=("conv3d_3",) * 4, n_c=3, n_f=4), (0.2, 14.0))  # ideal (0.2, 10), scale (0.8, 4)
    F = np.array([[0.6, 12.0]])  # normalised (0.5, 0.5)
    for i, w in enumerate(s.weights):
        u = w / np.linalg.norm(w)
        d1 = 0.5 * u.sum()
        assert s._g(F, i)[0] == pytest.approx(d1 + 5.0 * np.linalg.norm(0.5 - d1 * u), rel=1e-6)


# -- initial population ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed_smallest", [False, True])
def test_latin_hypercube_start_with_or_without_the_smallest(seed_smallest):
    """10 genomes, the shared initial design: with seed_smallest the smallest genome first, then a
    Latin hypercube of 9 (one stratum per value: no op as op1 and no learning rate twice); without
    it a Latin hypercube of 10 (each of the 10 ops as op1 exactly once)."""
    s = _samea(seed=3, seed_smallest=seed_smallest)
    first = s.ask(20)
    assert len(first) == 10 and s.ask(1) == []  # generation 0 only, then wait for its results
    lhs = first[1:] if seed_smallest else first
    assert len({g.ops[0] for g in lhs}) == len(lhs) and len({g.lr for g in lhs}) == len(lhs)
    if seed_smallest:
        assert first[0] == Genome.smallest(SPACE) and Genome.smallest(SPACE) not in lhs
    else:
        assert {g.ops[0] for g in first} == set(OPS) and Genome.smallest(SPACE) not in first


def test_initial_population_sorted_lowest_f1_on_weight_1_0():
    s = _samea(N=4, T=2)
    first = s.ask(4)
    f1s = [0.7, 0.2, 0.9, 0.5]
    for g, f1 in zip(first, f1s):
        s.tell(g, (f1, f2(g)))
    s.ask(1)  # ends generation 0
    assert [m[1] for m in s.population] == [0.9, 0.7, 0.5, 0.2]
    assert tuple(s.weights[3]) == (1.0, 0.0)


def test_a_generation_waits_for_its_results():
    """Init, then one learning generation of N children (one per subproblem), then the next."""
    s = _samea(N=4, T=2, LGen=1)
    for g in s.ask(4):
        s.tell(g, objectives(g))
    kids = s.ask(10)
    assert len(kids) == 4 and s.generation == 1 and s.ask(3) == []
    assert sorted(it[1] for it in s.inflight) == [0, 1, 2, 3]
    for g in kids:
        s.tell(g, objectives(g))
    assert s.ask(1) and s.generation == 2


# -- variation -----------------------------------------------------------------------------------------


def test_mutation_schedule():
    assert mutation_probability(1, 40, 1.0) == pytest.approx(1 - math.log(2) / math.log(40))  # ≈ 0.81
    assert mutation_probability(10, 40, 1.0) == pytest.approx(1 - math.log(11) / math.log(40))
    assert mutation_probability(39, 40, 1.0) == pytest.approx(0.1)  # the floor 1/n
    assert mutation_probability(500, 40, 1.0) == pytest.approx(0.1)
    ps = [mutation_probability(g, 40, 1.0) for g in range(1, 40)]
    assert all(a >= b for a, b in zip(ps, ps[1:]))


def test_mutation_draws_learned_values_never_the_old_one():
    s = _samea()
    favoured = OPS.index("p3d_5")
    s.value_probs["op1"] = [0.02] * len(OPS)
    s.value_probs["op1"][favoured] = 0.82
    old = Genome(ops=("conv3d_1",) * 4, lr=SPACE.lr_grid[3]).values()
    k = VARIABLES.index("op1")
    draws = [s._mutate(old, 1.0) for _ in range(600)]
    assert all(d[i] != old[i] for d in draws for i in range(len(VARIABLES)))  # p = 1: every variable moves
    share = np.mean([d[k] == "p3d_5" for d in draws])
    assert share == pytest.approx(0.82 / (1 - 0.02), abs=0.05)  # the old value's mass is removed
    assert all(s._mutate(old, 0.0) == list(old) for _ in range(20))


def test_children_are_never_repeats():
    s = _samea(N=4, T=2, LGen=3)
    for g in s.ask(4):
        s.tell(g, objectives(g))
    seen = {g.key() for g in (Genome.from_json(h[0]) for h in s.history)}
    for _ in range(3):
        kids = s.ask(4)
        assert len({g.key() for g in kids}) == 4 and not seen & {g.key() for g in kids}
        seen |= {g.key() for g in kids}
        for g in kids:
            s.tell(g, objectives(g))


# -- learned probabilities -----------------------------------------------------------------------------


def test_value_probabilities_by_hand():
    # merits: 1.5 − mean(0.5, 0.7) = 0.9, 0 (no network), 1.5 − 1.5 = 0 → shares (1, 0, 0) + 0.2/3
    p = value_probabilities([[0.5, 0.7], [], [1.5]], 1.5, 0.2)
    assert p == pytest.approx([(1 + 0.2 / 3) / 1.2, (0.2 / 3) / 1.2, (0.2 / 3) / 1.2])
    assert value_probabilities([[], []], 1.5, 0.2) == pytest.approx([0.5, 0.5])


def test_subproblem_probabilities_by_hand():
    # shares (0.75, 0.25, 0, 0) + 0.05 → (0.8, 0.3, 0.05, 0.05) / 1.2
    assert subproblem_probabilities([3, 1, 0, 0], 0.2) == pytest.approx([0.8 / 1.2, 0.3 / 1.2, 0.05 / 1.2, 0.05 / 1.2])
    assert subproblem_probabilities([0, 0], 0.2) == pytest.approx([0.5, 0.5])


def test_best_n_by_nsga2_ranking():
    F = np.array([[0, 3], [1, 1], [3, 0], [2, 2], [4, 4]], dtype=float)
    assert sorted(best_n_nsga2(F, 4)) == [0, 1, 2, 3]
    assert sorted(best_n_nsga2(F, 2)) == [0, 2]  # the front's extremes have infinite crowding distance
    assert sorted(best_n_nsga2(F, 9)) == [0, 1, 2, 3, 4]


def test_probabilities_are_learned_after_LGen_only():
    s = _samea(seed=1, N=6, T=3, LGen=1)
    uniform = dict(s.value_probs)
    for _ in range(12):  # init + learning generation
        for g in s.ask(1):
            s.tell(g, objectives(g))
    asked = s.ask(1)  # closes generation 1 (a learning generation): nothing learned yet
    assert s.generation == 2 and s.value_probs == uniform and s.subproblem_probs == pytest.approx([1 / 6] * 6)
    for g in asked:
        s.tell(g, objectives(g))
    while s.generation < 3:
        for g in s.ask(1):
            s.tell(g, objectives(g))
    assert s.value_probs != uniform
    assert sum(s.subproblem_probs) == pytest.approx(1.0) and sum(s.success) > 0


# -- screening and replacement -------------------------------------------------------------------------


def _screening_setup(pred_f1: float):
    """N = 4, T = 2, LGen = 0: the population at hand-set objectives, the forest's prediction fixed."""
    s = _samea(N=4, T=2, LGen=0)
    pop = [(Genome(ops=(op,) * 4, n_c=2, n_f=3), (f1, 0.0)) for op, f1 in
           zip(("conv3d_1", "conv2d_3", "conv2d_5", "p3d_3"), (1.2, 0.9, 0.6, 0.3))]
    pop = [(g, (f1, f2(g))) for g, (f1, _) in pop]
    _set_population(s, pop)
    s._predict = lambda genomes: (np.full(len(genomes), (pred_f1 - s.lo[0]) / (s.hi[0] - s.lo[0])),
                                  np.full(len(genomes), 0.1))
    return s


def test_screening_trains_a_child_that_beats_any_neighbour():
    """The child of subproblem 0 is compared with B(0) = {0, 1}: predicted worse than 0's member
    but as good as 1's → trained at once; worse than both → deferred (costs nothing)."""
    child = Genome(ops=("conv3d_3",) * 4, n_c=2, n_f=3)
    s = _screening_setup(pred_f1=0.0)
    bounds = s._bounds()
    g0, g1 = s._g_of_member(0, bounds), s._g_of_member(1, bounds)
    # find a predicted f1 between the two neighbours' bars for this child
    lo, hi = 0.0, 1.5
    for _ in range(60):
        mid = (lo + hi) / 2
        F = np.array([[mid, f2(child)]])
        beats1 = s._g(F, 1, bounds)[0] <= g1
        lo, hi = (mid, hi) if beats1 else (lo, mid)
    assert s._g(np.array([[lo, f2(child)]]), 0, bounds)[0] > g0  # not good enough for its own subproblem
    s = _screening_setup(pred_f1=lo)
    s._screen_against_neighbours(child, 0)
    assert [q[0] for q in s.queue] == [child.to_json()] and not s.deferred
    s = _screening_setup(pred_f1=10.0)
    s._screen_against_neighbours(child, 0)
    assert not s.queue and [d[0] for d in s.deferred] == [child.to_json()] and s.n_deferred == 1


def test_deferred_children_to_train_by_hand():
    trained = np.array([[0.2, 5.0], [0.5, 3.0]])
    cand = np.array([[0.1, 6.0],   # 0: on the front (lowest f1 of all)
                     [0.6, 4.0],   # 1: dominated by (0.5, 3); lowest predicted f1 of the rest
                     [0.9, 8.0],   # 2: dominated; std 0.3
                     [0.7, 9.0],   # 3: dominated; std 0.5 → highest of the rest
                     [1.0, 9.5]])  # 4: dominated; std 0.1
    std = np.array([0.0, 0.0, 0.3, 0.5, 0.1])
    assert deferred_to_train(trained, cand, std) == [0, 1, 3]
    assert deferred_to_train(trained, cand[1:2], std[1:2]) == [0]  # one deferred child: it trains


def test_replacement_when_the_child_matches_or_beats_a_neighbour():
    s = _samea(N=4, T=2, LGen=5)
    pop = [(Genome(ops=(op,) * 4, n_c=2, n_f=3), None) for op in ("conv3d_1", "conv2d_3", "conv2d_5", "p3d_3")]
    pop = [(g, (f1, f2(g))) for (g, _), f1 in zip(pop, (1.2, 0.9, 0.6, 0.3))]
    _set_population(s, pop)
    child = Genome(ops=("conv3d_3",) * 4, n_c=2, n_f=3)
    s.inflight = [[child.to_json(), 0, None]]
    s.tell(child, (0.9, f2(pop[1][0])))  # B(0) = {0, 1}: beats member 0 (1.2), equals member 1
    assert s.population[0][0] == child.to_json() and s.population[1][0] == child.to_json()
    assert s.population[2][0] == pop[2][0].to_json()  # outside B(0)


def test_end_of_generation_trains_the_deferred_picks():
    s = _screening_setup(pred_f1=10.0)  # every child is predicted poor: all deferred
    kids = s.ask(10)
    assert s.n_deferred == 4 and len(kids) >= 1 and s.stage == "deferred"
    assert {g.key() for g in kids} <= {Genome.from_json(d[0]).key() for d in s.deferred}


def test_rules_must_be_known():
    with pytest.raises(ConfigError, match="search.samea.rules"):
        config_from_dict({"search": {"samea": {"rules": "classic"}}})
    with pytest.raises(ConfigError, match="search.samea"):
        config_from_dict({"search": {"samea": {"T": 1}}})


def test_state_round_trip_with_deferred_children_mid_generation():
    """Resumed between two screened slots (deferred children held, results in flight), the
    strategy asks exactly what the original asks."""
    import json

    a = _samea(seed=5, N=6, T=3, LGen=1)
    while not (a.deferred and a.inflight and a.stage == "children"):
        for g in a.ask(2):
            if a.deferred and a.stage == "children":
                break  # keep this one in flight
            a.tell(g, objectives(g))
    b = _samea(seed=99, N=6, T=3, LGen=1)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for _ in range(12):
        ga, gb = a.ask(2), b.ask(2)
        assert [g.key() for g in ga] == [g.key() for g in gb]
        for g in [Genome.from_json(js) for js in list(a.pending)]:
            a.tell(g, objectives(g))
            b.tell(g, objectives(g))
    assert json.dumps(a.state_dict(), sort_keys=True) == json.dumps(b.state_dict(), sort_keys=True)
