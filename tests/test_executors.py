"""Executors: failures become results, dead workers are retried once, Ray runs trials in parallel."""

import json
import os
from pathlib import Path

import pytest

from medseg_nas.testing import fake_search as fk
from medseg_nas.config import config_from_dict
from medseg_nas.nas.executors import LocalExecutor, RayExecutor, TrialSpec, make_executor
from medseg_nas.nas.runner import run_search
from medseg_nas.space.genome import Genome, SearchSpace


def _spec(tmp_path, i, seed=0):
    g = Genome(n_c=2, n_f=3, lr=1e-3 * (1 + i % 3))
    return TrialSpec(trial_id=i, genome=g.to_json(), seed=seed, run_dir=str(tmp_path), config=dict(train={"epochs": 3}))


def test_in_process_executor_turns_exceptions_into_failures(tmp_path):
    ex = LocalExecutor(fk.raising_trial)
    ex.submit(_spec(tmp_path, 1))
    (c,) = ex.wait()
    assert c.result.status == "failed" and c.result.error.startswith("ValueError: shape mismatch in trial 1")
    assert ex.wait() == [] and ex.in_flight == 0


def test_process_workers_retry_a_dead_worker_once(tmp_path):
    ex = LocalExecutor(fk.dies_once_trial, workers=2)
    try:
        assert ex.capacity == 2
        ex.submit(_spec(tmp_path, 1))
        ex.submit(_spec(tmp_path, 2))
        done = []
        while ex.in_flight:
            done += ex.wait(timeout=60)
        assert sorted(c.spec.trial_id for c in done) == [1, 2]
        assert all(c.result.status == "done" for c in done)
        assert {c.spec.trial_id: c.attempts for c in done} == {1: 2, 2: 1}
    finally:
        ex.shutdown()
    ex = LocalExecutor(fk.always_dies_trial, workers=2)
    try:
        ex.submit(_spec(tmp_path, 3))
        (c,) = ex.wait(timeout=60)
        assert c.result.status == "failed" and "died" in c.result.error and c.attempts == 2
    finally:
        ex.shutdown()


def test_make_executor_local_defaults():
    cfg = config_from_dict({})
    ex = make_executor(cfg.executor, fk.analytic_trial, "cpu")
    assert isinstance(ex, LocalExecutor) and ex.capacity == 1
    ex.shutdown()


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'medseg-nas[ray]'): Ray executor not tested")
    tests_dir = str(Path(__file__).parent)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")])}},
    )
    yield ray
    ray.shutdown()


def test_ray_search_two_cpu_workers(ray_local, tmp_path):
    """4 tiny trials on a local Ray instance with 2 CPU workers; the worker of trial 1 dies once."""
    cfg = config_from_dict(fk.TINY_CONFIG, overrides=["executor.kind=ray"])
    ex = RayExecutor(fk.dies_once_trial, cpus_per_trial=1)
    assert ex.capacity == 2 and ex.options == {"num_cpus": 1.0}
    strat = fk.TinyRandomStrategy(SearchSpace.from_config(cfg.space), seed=1)
    s = run_search(cfg, tmp_path / "r", strategy=strat, budget=4, trial_fn=fk.dies_once_trial, executor=ex, progress=False)
    ex.shutdown()
    assert s.n_trials == 4 and s.n_done == 4, s
    assert (tmp_path / "r" / "died_1").exists()  # trial 1's first worker died; Ray re-ran it
    ref = run_search(cfg, tmp_path / "ref", strategy=fk.TinyRandomStrategy(SearchSpace.from_config(cfg.space), seed=1),
                     budget=4, trial_fn=fk.analytic_trial, progress=False)
    assert sorted(fk.front_of(s)) == sorted(fk.front_of(ref))


def test_ray_worker_dying_twice_is_a_failed_trial(ray_local, tmp_path):
    ex = RayExecutor(fk.always_dies_trial, cpus_per_trial=1)
    ex.submit(_spec(tmp_path, 7))
    done = []
    while ex.in_flight:
        done += ex.wait(timeout=120)
    ex.shutdown()
    (c,) = done
    assert c.spec.trial_id == 7 and c.result.status == "failed" and "died" in c.result.error


def test_two_local_workers_dedupe_in_flight_genomes(tmp_path, monkeypatch):
    """Parallel trials: a genome asked again while its twin trains waits for that trial."""
    monkeypatch.setenv("FAKE_TRIAL_SECONDS", "0.2")
    cfg = config_from_dict(fk.TINY_CONFIG)
    strat = fk.TinyRandomStrategy(SearchSpace.from_config(cfg.space), seed=3, repeat=2)
    ex = LocalExecutor(fk.analytic_trial, workers=2)
    try:
        s = run_search(cfg, tmp_path / "r", strategy=strat, budget=6, trial_fn=fk.analytic_trial, executor=ex, progress=False)
    finally:
        ex.shutdown()
    assert s.n_trials == 6
    keys = [r for r in json.loads((tmp_path / "r" / "strategy_state.json").read_text())["state"]["asked"]]
    assert len(strat.told) == len(strat.asked) == len(keys)  # every ask was told exactly once
    from medseg_nas.trial_store import TrialStore

    with TrialStore(tmp_path / "r" / "trials.sqlite") as st:
        stored = [r.key for r in st.rows()]
    assert len(stored) == len(set(stored)) == 6
