"""Standard networks scaled to a search pick's size (issue 27's controls): each is sized to the
nearest width, still the network its library builds, and runs a patch of the plan."""

from types import SimpleNamespace

import pytest
import torch

from medseg_nas.bench.peers import dynunet_plan, monai_dynunet, n_params, sized_width, small_standard_networks

PLAN = SimpleNamespace(target_spacing=[1.0, 1.0, 1.0], network_plan=SimpleNamespace(strides=[(2, 2, 2)] * 3 + [(1, 1, 1)]))


def test_nnunets_own_width_is_unchanged():
    # base 32 is nnU-Net's 32..320 plan: the equal-wall-clock record's 5,600,963-parameter DynUNet
    p = dynunet_plan(PLAN.target_spacing, PLAN.network_plan.strides)
    assert p["filters"] == [32, 64, 128, 256] and n_params(monai_dynunet(1, 3, p)) == 5_600_963


def test_sized_width_picks_the_nearest_in_log_ratio():
    build = lambda w: torch.nn.Linear(w, w, bias=False)  # noqa: E731  w*w parameters
    assert sized_width(build, 100) == (10, 100)
    assert sized_width(build, 130) == (11, 121)  # |log(121/130)| < |log(144/130)|


@pytest.mark.parametrize("target", [240_000, 445_000])
def test_small_standard_networks_match_the_pick_and_run_a_patch(target):
    nets = small_standard_networks(1, 3, PLAN, target, 1e-3)
    assert set(nets) == {"small_unet", "small_dynunet", "small_segresnet"}
    x = torch.zeros(1, 1, 32, 48, 32)
    for name, (spec, fn, info) in nets.items():
        model = fn(0)
        n = n_params(model)
        assert n == info["n_params"] and info["sized_to"] == target
        assert 1 / 1.6 < n / target < 1.6, (name, n)  # the nearest width, not an arbitrary one
        with torch.no_grad():
            assert model.eval()(x).shape == (1, 3, 32, 48, 32), name
        assert spec.name == name and spec.lr == 1e-3
