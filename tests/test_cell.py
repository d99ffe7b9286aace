"""The two cells (space.cell): the authors' "emonas" network as EMONASArch.py builds it, today's
"residual" network unchanged, and the cell choice carried through trials, f2, retrain and model files."""

import json
import math

import pytest
import torch
from torch import nn

from medseg_nas.config import config_from_dict
from medseg_nas.errors import ConfigError, MedsegError
from medseg_nas.results import TrialResult
from medseg_nas.space import (
    CELLS,
    PUBLISHED_GENOMES,
    PUBLISHED_PARAMS,
    EMONASNet,
    EmonasNet,
    Genome,
    NetworkPlan,
    build_network,
    count_parameters,
    plan_from_spacing,
)
from medseg_nas.space.cell_emonas import EmonasCell
from medseg_nas.space.ops import make_preact_op

# a hand count of the authors' Keras graph (../shared/EMONAS_REFERENCE.md, "Check"), 32 filters, 7 cells
HAND_COUNT = {"prostate": 5.95e6, "hippocampus": 7.06e6, "cardiac": 7.29e6}
# the authors' sigmoid heads have one channel per foreground class
FOREGROUND = {"prostate": 1, "hippocampus": 2, "cardiac": 3}
IDENTITY = Genome(inputs=(0, 1, 2), ops=("identity",) * 4, n_c=2, n_f=3, lr=1e-3)


@pytest.mark.parametrize("name", sorted(PUBLISHED_GENOMES))
def test_emonas_cell_matches_published_parameter_counts(name):
    g = PUBLISHED_GENOMES[name]
    assert g.filters == 32 and g.n_cells == 7
    n = count_parameters(g, 1, FOREGROUND[name], cell="emonas")
    assert abs(n / PUBLISHED_PARAMS[name] - 1) < 0.10
    assert abs(n / HAND_COUNT[name] - 1) < 0.001  # equal to the hand count at its rounding
    # our head also has a background channel: 33 parameters (32 weights + bias) more
    assert count_parameters(g, 1, FOREGROUND[name] + 1, cell="emonas") == n + 33


def test_residual_cell_is_unchanged():
    """Today's network: the default cell, same class, same counts as before space.cell existed."""
    counts = {k: count_parameters(g, 1, 3) for k, g in PUBLISHED_GENOMES.items()}
    assert counts == {"prostate": 7795075, "hippocampus": 8990467, "cardiac": 8446339}
    assert all(count_parameters(g, 1, 3, cell="residual") == counts[k] for k, g in PUBLISHED_GENOMES.items())
    assert type(build_network(IDENTITY, 1, 3)) is EMONASNet
    torch.manual_seed(0)
    a = build_network(IDENTITY, 1, 3, cell="residual")
    torch.manual_seed(0)
    b = build_network(IDENTITY, 1, 3)
    x = torch.randn(1, 1, 16, 16, 16)
    assert torch.equal(a(x), b(x))


def test_unknown_cell_is_rejected():
    with pytest.raises(ValueError, match="unknown cell 'emonsa'"):
        build_network(IDENTITY, 1, 3, cell="emonsa")
    assert config_from_dict({}).space.cell == "residual"
    assert config_from_dict({"space": {"cell": "emonas"}}).space.cell == "emonas"
    with pytest.raises(ConfigError, match="space.cell.*did you mean 'emonas'"):
        config_from_dict({"space": {"cell": "emonsa"}})


def test_cell_output_is_the_sum_of_all_four_nodes():
    """All-identity cell: every node is the input, so the output is 4·x (no residual, no mean)."""
    x = torch.randn(2, 4, 6, 6, 6)
    assert torch.equal(EmonasCell(IDENTITY, 4, 4)(x), 4 * x)
    # a down cell widens: identity repeats the channels ([x, x]), as EMONASArch.Identity
    assert torch.equal(EmonasCell(IDENTITY, 4, 8)(x), 4 * torch.cat([x, x], dim=1))
    # node 4 reads node 3, which reads node 1: conv nodes that other nodes read still count
    g = Genome(inputs=(0, 1, 3), ops=("identity", "identity", "identity", "identity"), n_c=2, n_f=3)
    assert torch.equal(EmonasCell(g, 4, 4)(x), 4 * x)


def test_ops_are_pre_activation():
    kinds = lambda m: [type(c).__name__ for c in m]  # noqa: E731
    assert kinds(make_preact_op("conv3d_3", 4, 8)) == ["ReLU", "Conv3d", "InstanceNorm3d"]
    assert kinds(make_preact_op("p3d_5", 8, 8)) == ["ReLU", "Conv3d", "Conv3d", "InstanceNorm3d"]  # one norm
    assert [c.kernel_size for c in make_preact_op("p3d_5", 8, 8) if isinstance(c, nn.Conv3d)] == [(5, 5, 1), (1, 1, 5)]
    assert kinds(make_preact_op("conv2d_7", 1, 8, activate=False)) == ["Conv3d", "InstanceNorm3d"]  # stem
    op = make_preact_op("conv3d_1", 2, 2)
    assert all(c.bias is not None for c in op if isinstance(c, nn.Conv3d))  # Keras convs have biases
    x = -torch.rand(1, 2, 4, 4, 4)  # all negative: the leading ReLU zeroes them, the op sees zeros
    with torch.no_grad():
        assert torch.allclose(op(x), op(torch.zeros_like(x)))


def test_macro_structure_all_identity_network():
    """Only the transposed convs (with bias) and the head carry parameters: the stem is op1
    (identity), pooling is max-pooling, skips are added (decoder cells keep the level's width)."""
    n = count_parameters(IDENTITY, 1, 2, cell="emonas")
    assert n == (32 * 16 * 8 + 16) + (16 * 8 * 8 + 8) + (8 * 2 + 2)
    net = build_network(IDENTITY, 1, 2, cell="emonas")
    assert type(net) is EmonasNet
    assert not any(isinstance(m, nn.Conv3d) and m.stride != (1, 1, 1) for m in net.modules())
    assert sum(isinstance(m, nn.MaxPool3d) for m in net.modules()) == 2
    # stem repeats the single channel to 8: a constant image stays constant through the cells
    x = torch.ones(1, 1, 8, 8, 8)
    stem = net.stem(x)
    assert stem.shape == (1, 8, 8, 8, 8) and torch.equal(stem, torch.ones_like(stem))


def test_stem_is_op1_without_activation():
    g = Genome(inputs=(0, 1, 2), ops=("p3d_3", "conv3d_3", "conv2d_5", "conv3d_1"), n_c=2, n_f=3)
    net = build_network(g, 2, 3, cell="emonas")
    assert [type(c).__name__ for c in net.stem] == ["Conv3d", "Conv3d", "InstanceNorm3d"]
    assert net.stem[0].in_channels == 2 and net.stem[0].out_channels == 8
    # down cells: ops reading the pooled cell input go from C/2 to C, the others stay at C
    down1 = net.down[0]
    assert down1.nodes[0][1].in_channels == 8 and down1.nodes[1][1].in_channels == 8  # node 2 reads node 0
    assert down1.nodes[2][1].in_channels == 16 and all(op[-1].num_features == 16 for op in down1.nodes)


def test_anisotropic_plan_strides_and_training_step():
    plan = plan_from_spacing((1.0, 1.0, 2.5), patch_size=(32, 32, 16))  # strides 221, 222, 222
    g = PUBLISHED_GENOMES["cardiac"].with_value("n_f", 3)
    net = build_network(g, 1, 3, plan, cell="emonas")
    assert [p.kernel_size for p in net.pool] == [tuple(s) for s in plan.strides[:3]]
    assert plan.strides[0] != plan.strides[2]  # the plan is anisotropic
    x = torch.randn(2, 1, 32, 32, 16)
    out = net(x)
    assert out.shape == (2, 3, 32, 32, 16)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert count_parameters(g, 1, 3, plan, cell="emonas") == sum(p.numel() for p in net.parameters())
    iso = build_network(g, 1, 3, cell="emonas")  # the authors' 2×2×2 on the default plan
    assert all(p.kernel_size == (2, 2, 2) for p in iso.pool) and all(u.stride == (2, 2, 2) for u in iso.up)


def test_he_uniform_init_and_zero_biases():
    torch.manual_seed(0)
    net = build_network(PUBLISHED_GENOMES["hippocampus"].with_value("n_f", 3), 1, 3, cell="emonas")
    for m in net.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            fan_in = m.weight[0].numel() if isinstance(m, nn.Conv3d) else m.weight.shape[1] * m.weight[0, 0].numel()
            assert m.weight.abs().max() <= math.sqrt(6 / fan_in) + 1e-6
            assert m.weight.abs().max() > 0.8 * math.sqrt(6 / fan_in)  # uniform over the whole range
            assert torch.count_nonzero(m.bias) == 0


def test_trainer_builds_the_configured_cell():
    from medseg_nas.config import TrainConfig
    from medseg_nas.train import Trainer
    from medseg_nas.testing.toy import ToyBundle

    bundle = ToyBundle(n_train=4, n_val=2, shape=(24, 24, 24), patch=(16, 16, 16), seed=0)
    g = Genome(inputs=(0, 1, 2), ops=("conv3d_3", "conv2d_3", "identity", "identity"), n_c=2, n_f=3, lr=3e-3)
    tcfg = TrainConfig(epochs=5, iters_per_epoch=6, batch_size=2, patience=0, val_every=1, sw_batch_size=4)
    r = Trainer(tcfg, bundle, bundle.plan, device="cpu", progress=False, cell="emonas").fit(g, seed=0)
    assert r.status == "done", r.error
    assert r.n_params == count_parameters(g, 1, 3, cell="emonas") != count_parameters(g, 1, 3)
    assert r.val_dice > 0.6  # learns the phantoms (chance is ~0.3), like the residual cell
    build_network(g, 1, 3, cell="emonas").load_state_dict(r.state_dict)


def test_search_counts_f2_and_trains_with_the_configured_cell(monkeypatch):
    import medseg_nas.train
    from medseg_nas.nas import trial
    from medseg_nas.nas.executors import TrialSpec
    from medseg_nas.search.objectives import reference_box

    boxes = {c: reference_box(config_from_dict({"space": {"cell": c}}), 1, 2, NetworkPlan()) for c in CELLS}
    small, big = Genome.smallest(), Genome(inputs=(0, 1, 2), ops=("conv3d_5",) * 4, n_c=4, n_f=5)
    for c in CELLS:
        assert boxes[c][0][1] == pytest.approx(math.log(count_parameters(small, 1, 2, cell=c)))
        assert boxes[c][1][1] > math.log(count_parameters(big, 1, 2, cell=c))
    assert boxes["emonas"] != boxes["residual"]

    seen = {}

    class Recorder:
        def __init__(self, *a, **kw):
            seen.update(kw)

        def fit(self, genome, seed):
            from medseg_nas.results import TrialResult

            return TrialResult.failed("fitted")  # failed: nothing to cost

    class Ctx:
        cfg = config_from_dict({"space": {"cell": "emonas"}})
        bundle = plan = None

    monkeypatch.setattr(trial.WORKER_CONTEXTS, "for_spec", lambda spec: Ctx)
    monkeypatch.setattr(medseg_nas.train, "Trainer", Recorder)
    spec = TrialSpec(trial_id=1, genome=IDENTITY.to_json(), seed=0, run_dir=".", config={})
    assert trial.train_trial(spec).error == "fitted" and seen["cell"] == "emonas"


def test_runner_f2_uses_the_configured_cell(tmp_path):
    from medseg_nas.nas.runner import _Search
    from medseg_nas.testing.fake_search import TINY_CONFIG, analytic_trial

    cfg = config_from_dict({**TINY_CONFIG, "space": {**TINY_CONFIG["space"], "cell": "emonas"}})
    s = _Search(cfg, tmp_path, False, None, analytic_trial, None, False)  # the session the strategies see
    try:
        assert s.strategy.strategy.f2_of(IDENTITY) == math.log(count_parameters(IDENTITY, 1, 2, cell="emonas"))
        assert s.problem.costs.n_params(IDENTITY) != count_parameters(IDENTITY, 1, 2, cell="residual")
    finally:
        s.store.close()


# -- model files ---------------------------------------------------------------------------------


def _checkpoint(path, cell):
    from medseg_nas.model_io import save_model
    from medseg_nas.testing.fixtures import GENOME, PLAN

    torch.manual_seed(0)
    net = build_network(GENOME, 1, 3, NetworkPlan(), cell=cell)
    save_model(path, net, GENOME, 1, 3, NetworkPlan(), dict(PLAN), cell=cell)
    return net


def test_checkpoint_records_and_rebuilds_the_cell(tmp_path):
    from medseg_nas.model_io import load_model

    net = _checkpoint(tmp_path / "model.pt", "emonas").eval()
    assert torch.load(tmp_path / "model.pt", weights_only=True)["cell"] == "emonas"
    m = load_model(tmp_path / "model.pt")
    assert type(m.network) is EmonasNet and m.cell == "emonas" and m.metadata()["cell"] == "emonas"
    x = torch.randn(1, 1, 16, 16, 8)
    with torch.no_grad():
        assert torch.equal(m.network(x), net(x))


def test_checkpoint_without_cell_loads_as_residual(tmp_path):
    from medseg_nas.model_io import load_model

    net = _checkpoint(tmp_path / "model.pt", "residual").eval()
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    del ckpt["cell"]  # written before space.cell existed
    torch.save(ckpt, tmp_path / "old.pt")
    m = load_model(tmp_path / "old.pt")
    assert type(m.network) is EMONASNet and m.cell == "residual"
    x = torch.randn(1, 1, 16, 16, 8)
    with torch.no_grad():
        assert torch.equal(m.network(x), net(x))
    ckpt["cell"] = "dense"
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(MedsegError, match=r"bad.pt: unknown cell 'dense'"):
        load_model(tmp_path / "bad.pt")
    ckpt["cell"] = "emonas"  # residual weights under the emonas cell: one clear error
    torch.save(ckpt, tmp_path / "wrong.pt")
    with pytest.raises(MedsegError, match="weights do not match .* with the 'emonas' cell"):
        load_model(tmp_path / "wrong.pt")


def test_torchscript_export_carries_the_cell(tmp_path):
    from medseg_nas.stages.export import export_torchscript
    from medseg_nas.model_io import load_model

    _checkpoint(tmp_path / "model.pt", "emonas")
    m = load_model(tmp_path / "model.pt")
    export_torchscript(m, tmp_path / "model.ts")
    ts = load_model(tmp_path / "model.ts")
    assert ts.cell == "emonas" and ts.metadata()["cell"] == "emonas"


def test_retrain_saves_the_run_config_cell(tmp_path):
    from medseg_nas.model_io import load_model
    from medseg_nas.stages.retrain import retrain
    from medseg_nas.trial_store import TrialStore
    from medseg_nas.testing.fixtures import GENOME, PLAN

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with TrialStore(run_dir / "trials.sqlite") as st:
        tid = st.start(GENOME.key(), GENOME.to_json(), seed=0)
        st.finish(tid, "done", f1=0.5, f2=10.0, n_params=100, result={"val_dice": 0.5})
    cfg = config_from_dict({"space": {"cell": "emonas"}})
    cells = []

    def fit(cfg, run_dir, genome, seed, device, progress):
        cells.append(cfg.space.cell)
        net = build_network(genome, 1, 3, cell=cfg.space.cell)
        return TrialResult(state_dict=net.state_dict(), n_params=1), dict(PLAN)

    retrain(run_dir, "best", fit_fn=fit, cfg=cfg, log=lambda *a: None)
    assert cells == ["emonas"]
    m = load_model(run_dir / "best" / "model.pt")
    assert m.cell == "emonas" and type(m.network) is EmonasNet
    assert json.loads((run_dir / "best" / "retrain.json").read_text())["trial_id"] == tid


def test_run_dirs_from_before_space_cell_stay_residual(tmp_path):
    """An old run's config.yaml has no space.cell: resuming it still works, it counts as residual,
    and resuming it with another cell is refused (its trials were trained with the residual cell)."""
    import yaml

    from medseg_nas.errors import SearchError
    from medseg_nas.nas.runner import run_search
    from medseg_nas.rundir import RunDir, saved_cell
    from medseg_nas.testing.fake_search import TINY_CONFIG, analytic_trial, run_fake

    run_fake(str(tmp_path), budget=2)
    path = tmp_path / "config.yaml"
    assert saved_cell(path) == "residual"
    old = yaml.safe_load(path.read_text())
    del old["space"]["cell"]
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    assert saved_cell(path) is None and RunDir(tmp_path).config().space.cell == "residual"
    assert RunDir(tmp_path).config(["space.cell=emonas"]).space.cell == "emonas"
    assert run_fake(str(tmp_path), resume=True, budget=3).n_trials == 3
    cfg = config_from_dict(TINY_CONFIG, overrides=["space.cell=emonas"])
    with pytest.raises(SearchError, match="space.cell: 'residual' -> 'emonas'"):
        run_search(cfg, tmp_path, resume=True, budget=4, trial_fn=analytic_trial, progress=False)


def test_network_spec_builds_and_counts_as_the_four_arguments_do():
    """NetworkSpec bundles in_channels, n_classes, the stride plan and the cell: the same network."""
    from medseg_nas.space import NetworkSpec

    g = PUBLISHED_GENOMES["hippocampus"].with_value("n_f", 3)
    plan = NetworkPlan([(2, 2, 1), (2, 2, 1), (2, 2, 2), (2, 2, 1)])
    for cell in ("residual", "emonas"):
        spec = NetworkSpec(2, 4, plan, cell)
        assert spec.n_params(g) == count_parameters(g, 2, 4, plan, cell)
        assert sum(p.numel() for p in spec.build(g).parameters()) == spec.n_params(g)

    class _DataPlan:
        in_channels, n_classes, network_plan = 2, 4, plan

    assert NetworkSpec.of(_DataPlan(), "emonas") == NetworkSpec(2, 4, plan, "emonas")
