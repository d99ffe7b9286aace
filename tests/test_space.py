"""Invariants of the EMONAS-Net search space."""

import json

import numpy as np
import pytest
import torch

from medseg_nas.space import (
    ENCODING_SIZE,
    FULL_SPACE,
    OPS,
    PUBLISHED_GENOMES,
    VARIABLES,
    Genome,
    SearchSpace,
    build_network,
    count_parameters,
    plan_from_spacing,
)
from medseg_nas.space.cell import leaf_nodes
from medseg_nas.space.ops import make_op


def _differences(a: Genome, b: Genome) -> int:
    return sum(
        not (np.isclose(x, y) if isinstance(x, float) else x == y) for x, y in zip(a.values(), b.values())
    )


def _in_space(g: Genome, space: SearchSpace) -> bool:
    return (
        all(op in space.ops for op in g.ops)
        and g.n_c in space.n_c
        and g.n_f in space.n_f
        and space.lr_min * 0.999 <= g.lr <= space.lr_max * 1.001
    )


def test_json_round_trip_and_hash():
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = Genome.random(rng)
        back = Genome.from_json(g.to_json())
        assert back == g and hash(back) == hash(g) and back.key() == g.key()
        json.loads(g.to_json())  # plain JSON


def test_genome_rejects_out_of_range_values():
    with pytest.raises(ValueError):
        Genome(inputs=(2, 0, 0))  # node 2 cannot read node 2
    with pytest.raises(ValueError):
        Genome(ops=("conv3d_7",) * 4)
    with pytest.raises(ValueError):
        Genome(n_c=5)
    with pytest.raises(ValueError):
        Genome(lr=0.1)


def test_neighbours_differ_in_exactly_one_variable_and_cover_all_moves():
    g = PUBLISHED_GENOMES["hippocampus"]
    nbrs = g.neighbours()
    assert len(set(nbrs)) == len(nbrs)
    assert all(_differences(g, n) == 1 for n in nbrs)
    # 1 + 2 + 3 input moves, 4 × 9 op moves, 2 n_c, 2 n_f, and every lr of the grid (g.lr is off-grid)
    assert len(nbrs) == 6 + 36 + 2 + 2 + len(FULL_SPACE.lr_grid)
    assert len(FULL_SPACE.lr_grid) >= 8
    on_grid = g.with_value("lr", FULL_SPACE.lr_grid[3])
    assert len(on_grid.neighbours()) == 6 + 36 + 2 + 2 + len(FULL_SPACE.lr_grid) - 1


def test_mutation_and_crossover_stay_in_space():
    space = SearchSpace(n_c=(2, 3), n_f=(3,), ops=("conv3d_3", "conv2d_3", "identity"))
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b = Genome.random(rng, space), Genome.random(rng, space)
        assert _in_space(a, space)
        m = a.mutate(rng, space)
        assert _in_space(m, space) and m != a
        c = a.crossover(b, rng)
        assert _in_space(c, space)
        assert all(cv in (av, bv) for cv, av, bv in zip(c.values(), a.values(), b.values()))


def test_encoding_is_fixed_length_and_distinguishes_genomes():
    rng = np.random.default_rng(2)
    gs = list({Genome.random(rng) for _ in range(30)})
    codes = np.stack([g.encode() for g in gs])
    assert codes.shape == (len(gs), ENCODING_SIZE)
    assert len({c.tobytes() for c in codes}) == len(gs)


@pytest.mark.parametrize("op", OPS)
def test_every_op_keeps_shape(op):
    x = torch.randn(2, 4, 10, 12, 6)
    assert make_op(op, 4)(x).shape == x.shape


def test_leaf_nodes():
    assert leaf_nodes((0, 1, 2)) == [3, 4]  # n2<-x, n3<-n1, n4<-n2: nobody reads n3 or n4
    assert leaf_nodes((1, 2, 3)) == [4]
    assert leaf_nodes((0, 0, 0)) == [1, 2, 3, 4]


def test_random_genomes_build_and_run_on_anisotropic_patches():
    rng = np.random.default_rng(3)
    plan = plan_from_spacing((1.0, 1.0, 4.0), patch_size=(32, 32, 8))
    small = SearchSpace(n_f=(3,))
    for _ in range(6):
        g = Genome.random(rng, small)
        div = plan.divisor(g.n_c)
        net = build_network(g, 1, 3, plan)
        x = torch.randn(1, 1, 32, 32, 8)
        assert all(s % d == 0 for s, d in zip(x.shape[2:], div))
        assert net(x).shape == (1, 3, 32, 32, 8)


def test_plan_respects_thick_slices():
    plan = plan_from_spacing((1.5, 1.5, 10.0), patch_size=(160, 160, 16))
    assert plan.strides[0] == (2, 2, 1)  # 10 mm axis not pooled while in-plane is finer
    assert all(s[2] == 1 for s in plan.strides[:2])
    iso = plan_from_spacing((1.0, 1.0, 1.0), patch_size=(64, 64, 64))
    assert iso.strides == ((2, 2, 2),) * 4
    tiny = plan_from_spacing((1.0, 1.0, 1.0), patch_size=(64, 64, 16))
    assert tiny.divisor(4)[2] <= 4  # 16 voxels along z are never pooled below min_size


def test_parameter_count_is_exact():
    rng = np.random.default_rng(4)
    for g in [Genome.random(rng) for _ in range(5)] + [Genome.smallest()]:
        net = build_network(g, 2, 4)
        assert count_parameters(g, 2, 4) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name", sorted(PUBLISHED_GENOMES))
def test_published_genomes_within_1_5x_of_paper_and_train(name):
    from medseg_nas.space import PUBLISHED_PARAMS

    g = PUBLISHED_GENOMES[name]
    n = count_parameters(g, 1, 3)
    assert PUBLISHED_PARAMS[name] / 1.5 <= n <= PUBLISHED_PARAMS[name] * 1.5
    net = build_network(g, 1, 3)
    x = torch.randn(1, 1, 16, 16, 16)
    out = net(x)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_smallest_genome_is_smallest():
    rng = np.random.default_rng(5)
    small = count_parameters(Genome.smallest(), 1, 3)
    assert all(count_parameters(Genome.random(rng), 1, 3) >= small for _ in range(20))


def test_variable_order_matches_architecture():
    assert VARIABLES == ("in2", "in3", "in4", "op1", "op2", "op3", "op4", "n_c", "n_f", "lr")
