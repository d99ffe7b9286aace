"""The `residual_light` layout (a plain two-conv full-resolution level, the genome's cell from level 1
down) and four first-level filters (`n_f` 2): the space's cheaper-per-step options for CPU clocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseg_nas.config import config_from_dict
from medseg_nas.errors import ConfigError, MedsegError
from medseg_nas.space import Genome, NetworkPlan, build_network, count_parameters, plan_from_spacing
from medseg_nas.space.cell import Cell
from medseg_nas.space.genome import PUBLISHED_N_F, SearchSpace

HEAVY = Genome(inputs=(0, 1, 1), ops=("p3d_7", "conv2d_3", "conv3d_5", "p3d_3"), n_c=3, n_f=2, lr=3e-3)
ACDC_LIKE = plan_from_spacing((1.5625, 1.5625, 10.0), patch_size=(64, 64, 8))  # strides 221, 221, ...


def _n(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _kernels(block: nn.Module) -> list[tuple]:
    return [m.kernel_size for m in block.modules() if isinstance(m, nn.Conv3d)]


def test_light_network_replaces_only_the_full_resolution_cells():
    light = build_network(HEAVY, 1, 4, ACDC_LIKE, cell="residual_light")
    full = build_network(HEAVY, 1, 4, ACDC_LIKE, cell="residual")
    assert ACDC_LIKE.strides[0] == (2, 2, 1)
    # level 0: two plain convs each side, 2D kernels where the plan keeps the thick axis
    assert _kernels(light.encoder[0]) == [(3, 3, 1), (3, 3, 1)] and _kernels(light.decoder[-1]) == [(3, 3, 1), (3, 3, 1)]
    assert not any(isinstance(m, Cell) for m in (*light.encoder[0].modules(), *light.decoder[-1].modules()))
    # every other level is the genome's cell, as in the residual network
    pairs = [*zip(light.encoder[1:], full.encoder[1:]), *zip(light.decoder[:-1], full.decoder[:-1]),
             (light.bottleneck, full.bottleneck)]
    assert all(isinstance(a, Cell) and _n(a) == _n(b) for a, b in pairs)
    level0 = _n(full.encoder[0]) + _n(full.decoder[-1]) - _n(light.encoder[0]) - _n(light.decoder[-1])
    assert count_parameters(HEAVY, 1, 4, ACDC_LIKE, cell="residual_light") == _n(light) == _n(full) - level0
    # the genome's ops do not reach level 0
    other = build_network(HEAVY.with_value("op1", "identity"), 1, 4, ACDC_LIKE, cell="residual_light")
    assert _n(other.encoder[0]) == _n(light.encoder[0]) and _n(other.encoder[1]) < _n(light.encoder[1])


def test_light_network_uses_3d_kernels_on_isotropic_data_and_trains():
    iso = build_network(HEAVY, 1, 3, NetworkPlan(), cell="residual_light")
    assert _kernels(iso.encoder[0]) == [(3, 3, 3), (3, 3, 3)]
    net = build_network(HEAVY, 1, 4, ACDC_LIKE, cell="residual_light")
    out = net(torch.randn(2, 1, 64, 64, 8))
    assert out.shape == (2, 4, 64, 64, 8)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_light_checkpoint_round_trips_and_rejects_residual_weights(tmp_path):
    from medseg_nas.model_io import load_model, save_model
    from medseg_nas.testing.fixtures import GENOME, PLAN

    torch.manual_seed(0)
    net = build_network(GENOME, 1, 3, NetworkPlan(), cell="residual_light").eval()
    save_model(tmp_path / "model.pt", net, GENOME, 1, 3, NetworkPlan(), dict(PLAN), cell="residual_light")
    m = load_model(tmp_path / "model.pt")
    assert m.cell == "residual_light" and m.metadata()["cell"] == "residual_light"
    x = torch.randn(1, 1, 16, 16, 8)
    with torch.no_grad():
        assert torch.equal(m.network(x), net(x))
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    ckpt["cell"] = "residual"  # light weights under the residual layout: one clear error
    torch.save(ckpt, tmp_path / "wrong.pt")
    with pytest.raises(MedsegError, match="weights do not match .* with the 'residual' cell"):
        load_model(tmp_path / "wrong.pt")


def test_four_first_level_filters_are_allowed_but_not_the_default():
    assert config_from_dict({"space": {"n_f": [2, 3], "cell": "residual_light"}}).space.n_f == [2, 3]
    assert config_from_dict({}).space.n_f == [3, 4, 5] and SearchSpace().n_f == PUBLISHED_N_F == (3, 4, 5)
    with pytest.raises(ConfigError, match=r"space.n_f.*1 is outside \{2, 3, 4, 5\}"):
        config_from_dict({"space": {"n_f": [1, 3]}})
    with pytest.raises(ValueError, match="n_f=6"):
        Genome(n_f=6)
    assert Genome(n_f=2).filters == 4
    assert Genome.smallest(SearchSpace(n_f=(2, 3))).n_f == 2
    g = Genome(n_f=2)
    assert g.encode()[-2] == 2 and Genome.from_json(g.to_json()) == g
