"""Real tiny searches (Trainer + strategies + data) on synthetic phantoms, on the CPU.

Budgets are the smallest that still train: 2 epochs x 2 iterations, n_f = 3, n_c = 2.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from medseg_nas.testing.fake_search import finished_trials

REPO = Path(__file__).resolve().parents[1]


def tiny_config(data_root: Path, name: str = "tiny", strategy: str = "random", budget: int = 4) -> dict:
    return {
        "name": name,
        "data": {
            "root": str(data_root),
            "val_fraction": 0.25,
            "test_fraction": 0.2,
            "max_patch_voxels": 32 * 32 * 8,
            "augment": "none",
        },
        "space": {"n_c": [2], "n_f": [3], "ops": ["conv3d_1", "conv3d_3", "conv2d_3", "p3d_3", "identity"], "lr_grid": 3},
        "train": {"epochs": 2, "iters_per_epoch": 2, "batch_size": 2, "patience": 2, "device": "cpu", "amp": False},
        "search": {"strategy": strategy, "budget_trials": budget, "seed": 0},
    }


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from data_prep import synthetic

    root = tmp_path_factory.mktemp("phantoms") / "data"
    synthetic.generate(root, cases=6, seed=0)
    return root


def _front(run_dir: Path):
    doc = json.loads((run_dir / "front.json").read_text())
    return [(e["key"], round(e["f1"], 9), round(e["f2"], 9)) for e in doc["front"]]


def _cli(args, env=None, **kw):
    env = dict(os.environ if env is None else env)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.Popen([sys.executable, "-m", "medseg_nas", *args], cwd=REPO, env=env, **kw)


def test_cli_search_end_to_end(phantoms, tmp_path):
    """`medseg-nas search CONFIG --run-dir DIR --budget 3`: a real tiny search via the CLI."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(phantoms)))
    run = tmp_path / "run"
    t = time.time()
    p = _cli(["search", str(cfg), "--run-dir", str(run), "--budget", "3", "--set", "search.seed=1"],
             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert "front of" in out and "trial 3/3" in out
    for name in ("config.yaml", "split.json", "fingerprint.json", "plan.json", "trials.sqlite",
                 "strategy_state.json", "front.json", "front.png", "hypervolume.png"):
        assert (run / name).is_file(), name
    con = sqlite3.connect(run / "trials.sqlite")
    rows = con.execute("SELECT id, status, f1, f2, n_params, history, seconds FROM trials ORDER BY id").fetchall()
    assert len(rows) == 3 and all(r[1] == "done" for r in rows), rows
    for _id, _s, f1, f2, n_params, history, seconds in rows:
        assert 0 <= f1 < 3 and abs(f2 - __import__("math").log(n_params)) < 1e-6
        assert len(json.loads(history)) == 2 and seconds > 0
    assert list((run / "tensorboard").glob("trial_*")), "no TensorBoard dir per trial"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["search"]["budget_trials"] == 3 and saved["search"]["seed"] == 1
    print(f"CLI tiny search: 3 trials in {time.time() - t:.1f} s")


@pytest.mark.slow
def test_kill_9_real_search_then_resume(phantoms, tmp_path):
    """kill -9 a real tiny search mid-run, resume: same front as an uninterrupted run (CPU)."""
    budget = 5
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(phantoms, budget=budget)))
    ref = _cli(["search", str(cfg), "--run-dir", str(tmp_path / "ref")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert ref.wait(timeout=600) == 0, ref.stderr.read()
    run = tmp_path / "killed"
    p = _cli(["search", str(cfg), "--run-dir", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while finished_trials(run / "trials.sqlite") < 2 and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # land somewhere inside the next trial
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    n_before = finished_trials(run / "trials.sqlite")
    assert 2 <= n_before < budget
    r = _cli(["search", str(cfg), "--run-dir", str(run), "--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert r.wait(timeout=600) == 0, r.stderr.read()
    con = sqlite3.connect(run / "trials.sqlite")
    statuses = [s for (s,) in con.execute("SELECT status FROM trials ORDER BY id")]
    assert statuses == ["done"] * budget
    assert _front(run) == _front(tmp_path / "ref")
