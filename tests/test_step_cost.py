"""medseg_nas.bench.step_cost: the taus that decide which f2 cost ranks a CPU training step."""

import pytest

from medseg_nas.bench.step_cost import seconds_per_gmac, tau_table


def _rows():
    # step follows MACs exactly; parameters run the other way; latency agrees except for one swap
    macs = [1e9, 2e9, 3e9, 4e9, 5e9, 6e9]
    return [{"name": f"n{i}", "macs": m, "n_params": 10 - i, "latency_ms": [10, 30, 20, 40, 50, 60][i],
             "step_s": m / 1e9 * 0.3} for i, m in enumerate(macs)]


def test_taus_rank_the_cost_that_follows_the_step_first_and_the_difference_excludes_zero():
    t = tau_table(_rows())
    assert t["n"] == 6 and t["macs"]["tau"] == 1.0 and t["macs"]["ci95"] == [1.0, 1.0]
    assert t["n_params"]["tau"] == -1.0
    assert t["latency_ms"]["tau"] == pytest.approx(13 / 15, abs=1e-3)  # one discordant pair of 15
    assert t["n_params_minus_macs"]["tau"] == -2.0 and t["n_params_minus_macs"]["ci95"][1] < 0
    lo, hi = t["macs_minus_latency_ms"]["ci95"]
    assert lo >= 0 and hi > 0 and lo <= t["macs_minus_latency_ms"]["tau"] <= hi


def test_taus_need_four_complete_rows():
    rows = _rows()
    rows[0]["latency_ms"] = None  # a network whose latency was not measured drops out
    assert tau_table(rows)["n"] == 5
    assert set(tau_table(rows[:4])) == {"n", "target"}  # 3 complete rows: no taus


def test_seconds_per_gmac():
    assert seconds_per_gmac(_rows()[:2]) == {"n0": 0.3, "n1": 0.3}
