"""Deployment costs (issue 29): MAC and memory counters against hand counts, the latency
measurement, `objectives.cost` as f2, the retrain caps, the store's cost columns, and a real tiny
search whose f2 is the measured CPU latency."""

import json
import math
import sqlite3

import pytest
import torch
from torch import nn

from medseg_nas.config import config_from_dict
from medseg_nas.deployment_cost import count_macs, measure_latency, network_cost, peak_activation_bytes
from medseg_nas.errors import ConfigError, MedsegError
from medseg_nas.trial_store import TrialStore
from medseg_nas.results import TrialResult
from medseg_nas.search.objectives import compute_objectives
from medseg_nas.space.ops import make_op


def _meta(build):
    with torch.device("meta"):
        return build()


# -- counters against hand counts ----------------------------------------------------------------


def test_macs_of_a_conv3d_match_the_hand_count():
    net = _meta(lambda: nn.Conv3d(4, 8, 3, padding=1))
    # every output voxel: Cout x Cin x k^3 multiply-accumulates
    assert count_macs(net, (1, 4, 8, 8, 8)) == 8 * 8 * 8 * (8 * 4 * 27)


def test_macs_of_a_pseudo3d_op_match_the_hand_count():
    c = 6
    op = _meta(lambda: make_op("p3d_3", c))
    convs = [m for m in op.modules() if isinstance(m, nn.Conv3d)]
    assert [tuple(m.kernel_size) for m in convs] == [(3, 3, 1), (1, 1, 3)]  # k x k x 1, then 1 x 1 x k
    voxels = 8 * 8 * 4
    assert count_macs(op, (1, c, 8, 8, 4)) == voxels * c * c * 9 + voxels * c * c * 3


def test_macs_of_a_transposed_conv_match_the_hand_count():
    net = _meta(lambda: nn.ConvTranspose3d(8, 4, 2, stride=2))
    # every INPUT voxel scatters Cin x Cout x k^3 products (counting per output voxel would be 8x off here)
    assert count_macs(net, (1, 8, 4, 4, 4)) == 4 * 4 * 4 * (8 * 4 * 8)


def test_peak_activation_memory_follows_frees():
    net = _meta(lambda: nn.Sequential(*[nn.Conv3d(c, 4, 1, bias=False) for c in (1, 4, 4)]))
    one = 4 * 8 * 8 * 8 * 4  # one output: 4 channels x 512 voxels x 4 bytes
    # a conv's output is freed once the next one has run: never more than two alive at once
    assert peak_activation_bytes(net, (1, 1, 8, 8, 8)) == 2 * one


def test_latency_is_measured_without_touching_the_callers_random_stream():
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    cost = network_cost(lambda: nn.Conv3d(1, 2, 3, padding=1), 1, [8, 8, 8], [10, 12, 9], latency_runs=3)
    assert torch.equal(torch.rand(3), expected)
    assert cost.latency_ms > 0 and cost.latency_threads == torch.get_num_threads() and cost.latency_runs == 3
    assert cost.volume_shape == [10, 12, 9] and cost.macs == 8 * 8 * 8 * 2 * 27
    no_latency = network_cost(lambda: nn.Conv3d(1, 2, 3, padding=1), 1, [8, 8, 8], None)
    assert no_latency.latency_ms is None and no_latency.macs == cost.macs


def test_latency_grows_with_the_work():
    small = measure_latency(nn.Conv3d(1, 2, 1), 1, [16, 16, 16], [16, 16, 16], runs=5)[0]
    big = measure_latency(nn.Sequential(*[nn.Conv3d(c, 32, 3, padding=1) for c in (1, 32, 32, 32)]), 1, [32, 32, 32],
                          [16, 16, 16], runs=5)[0]
    assert big > 5 * small


# -- f2, config and caps -------------------------------------------------------------------------


def _result(**kw):
    hist = [{"train_dice": 0.5, "val_dice": 0.4}] * 2
    return TrialResult(history=hist, train_dice=0.5, val_dice=0.4, e_max=2, epochs_budget=2, n_params=1000, **kw)


def test_f2_is_the_log_of_the_configured_cost():
    res = _result(macs=2_000_000, latency_ms=40.0)
    for cost, value in (("params", 1000), ("macs", 2_000_000), ("latency", 40.0)):
        cfg = config_from_dict({"objectives": {"cost": cost}}).objectives
        assert compute_objectives(res, cfg)[1] == pytest.approx(math.log(value))
    with pytest.raises(ValueError, match="latency_ms"):
        compute_objectives(_result(), config_from_dict({"objectives": {"cost": "latency"}}).objectives)


@pytest.mark.parametrize("section, bad, message", [
    ({"objectives": {"cost": "flops"}}, "objectives.cost", "flops"),
    ({"retrain": {"max_macs": -1}}, "retrain.max_macs", ">= 0"),
    ({"retrain": {"max_latency_ms": -5.0}}, "retrain.max_latency_ms", ">= 0"),
    ({"retrain": {"max_latency_ms": float("nan")}}, "retrain.max_latency_ms", "finite"),
    ({"objectives": {"latency_runs": 0}}, "objectives.latency_runs", ">= 1"),
])
def test_bad_cost_settings_are_one_config_error(section, bad, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(section)
    assert bad in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


def _rows(tmp_path):
    with TrialStore(tmp_path / "trials.sqlite") as st:
        for k, (f1, n, macs, ms) in enumerate([(0.3, 9000, 9e9, 900.0), (0.4, 3000, 2e9, 120.0), (0.6, 1000, 1e9, 80.0)]):
            tid = st.start(f"g{k}", json.dumps({"n_f": 3}), seed=0)
            st.finish(tid, "done", f1=f1, f2=math.log(n), n_params=n,
                      costs={"macs": macs, "act_mem_mb": 1.0, "latency_ms": ms})
        return st.rows()


def test_retrain_caps_on_macs_and_latency(tmp_path):
    from medseg_nas.stages.retrain import pick_trial

    rows = _rows(tmp_path)
    assert pick_trial(rows, "best")[0].f1 == 0.3
    row, why = pick_trial(rows, "best", {"max_latency_ms": 150})
    assert row.latency_ms == 120.0 and "<= 150 ms of CPU latency" in why
    row, why = pick_trial(rows, "best", {"max_macs": 1.5e9, "max_params": 5000})
    assert row.macs == 1_000_000_000 and "MACs" in why and "parameters" in why
    with pytest.raises(MedsegError, match=r"retrain.max_latency_ms = 50 .*the smallest is 80"):
        pick_trial(rows, "best", {"max_latency_ms": 50})
    with pytest.raises(MedsegError, match=r"retrain.max_macs = 10 MACs .*the smallest is 1,000,000,000"):
        pick_trial(rows, "knee", {"max_macs": 10})


def test_report_draws_the_front_against_each_cost(tmp_path):
    from medseg_nas.stages.report import cost_line, fig_costs

    rows = _rows(tmp_path)
    assert fig_costs(rows, rows[1].id, "latency").startswith("<img src='data:image/png;base64,")
    assert fig_costs([], None, "params") is None
    line = cost_line({"macs": 2e9, "latency_ms": 120.0, "predict_ms_per_volume": 300.0, "predict_device": "cpu",
                      "predict_threads": 2}, 3000)
    assert line == ("cost: 3,000 parameters, 2.00 GMACs per patch, 120 ms per median volume (search, CPU), "
                    "300 ms per test file (cpu, 2 threads, with I/O)")


def test_an_older_store_gains_the_cost_columns(tmp_path):
    path = tmp_path / "trials.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, genome TEXT NOT NULL,"
               " status TEXT NOT NULL, f1 REAL, f2 REAL, history TEXT, error TEXT, seconds REAL, seed INTEGER, host TEXT,"
               " started TEXT, finished TEXT, n_params INTEGER, attempts INTEGER NOT NULL DEFAULT 1, result TEXT)")
    db.execute("INSERT INTO trials (key, genome, status, f1, f2, n_params) VALUES ('a', '{}', 'done', 0.5, ?, 2000)",
               (math.log(2000),))
    db.commit()
    db.close()
    with TrialStore(path) as st:
        (old,) = st.rows()
        assert (old.macs, old.latency_ms, old.cost("params"), old.cost("latency")) == (None, None, 2000.0, None)
        tid = st.start("b", "{}", seed=0)
        st.finish(tid, "done", f1=0.4, f2=1.0, n_params=5, costs={"macs": 7, "latency_ms": 3.5})
        assert (st.get(tid).macs, st.get(tid).latency_ms) == (7, 3.5)


# -- a real tiny search with f2 = measured latency ------------------------------------------------


def test_search_on_measured_latency_records_every_cost(tmp_path):
    from data_prep import synthetic
    from medseg_nas.nas.runner import run_search

    root = tmp_path / "data"
    synthetic.generate(root, cases=6, seed=0)
    cfg = config_from_dict({
        "name": "latency",
        "data": {"root": str(root), "val_fraction": 0.25, "test_fraction": 0.2, "max_patch_voxels": 32 * 32 * 8,
                 "augment": "none"},
        "space": {"n_c": [2], "n_f": [3], "ops": ["conv3d_1", "conv3d_3", "identity"], "lr_grid": 3},
        "train": {"epochs": 1, "iters_per_epoch": 1, "batch_size": 2, "device": "cpu", "amp": False},
        "objectives": {"cost": "latency", "latency_runs": 2, "dice_at": "best"},
        "search": {"strategy": "random", "budget_trials": 3, "seed": 0},
    })
    run_dir = tmp_path / "run"
    run_search(cfg, run_dir, progress=False)
    with TrialStore(run_dir / "trials.sqlite") as st:
        rows = st.rows("done")
    assert len(rows) == 3
    for r in rows:
        assert r.macs > 0 and r.act_mem_mb > 0 and r.latency_ms > 0
        assert r.f2 == pytest.approx(math.log(r.latency_ms))  # f2 is the worker's measurement
        assert r.result["latency_threads"] >= 1 and r.result["cost_seconds"] > 0
    front = json.loads((run_dir / "front.json").read_text())
    assert front["cost"] == "latency"
    assert all(e["latency_ms"] and e["macs"] for e in front["front"])
