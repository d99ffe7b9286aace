"""One search per run directory: the CLI in real processes, racing on one run directory.

The searches run the real `medseg-nas search` with the analytic trial swapped in for training
(medseg_nas.testing.fake_trials.gated_trial: it logs each training to run_dir/trained.txt and waits for a gate
file, so the test decides when the live search may finish).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medseg_nas.testing import fake_search as fk
from medseg_nas.cli import main as cli
from medseg_nas.nas.run_lock import LOCK_NAME, RunDirBusy, holder, run_dir_lock
from medseg_nas.trial_store import TrialStore

# the CLI, with training replaced by the gated analytic trial
DRIVER = ("import sys, medseg_nas.testing.fake_trials as ft, medseg_nas.nas.runner as r; r.train_trial = ft.gated_trial; "
          "sys.argv[0] = 'medseg-nas'; from medseg_nas.cli import main; sys.exit(main(sys.argv[1:]))")
HOLD = ("import sys, time; from medseg_nas.nas.run_lock import run_dir_lock; "
        "cm = run_dir_lock(sys.argv[1]); cm.__enter__(); print('locked', flush=True); time.sleep(600)")
BUDGET = 3


def _env(gate: Path | None) -> dict:
    env = dict(os.environ)
    env.pop("FAKE_TRIAL_GATE", None)
    if gate is not None:
        env["FAKE_TRIAL_GATE"] = str(gate)
    return env


def _start(tmp: Path, tag: str, *args: str, gate: Path | None = None) -> subprocess.Popen:
    out = open(tmp / f"{tag}.out", "w")
    return subprocess.Popen([sys.executable, "-c", DRIVER, *args], env=_env(gate), stdout=out, stderr=subprocess.STDOUT)


def _output(tmp: Path, tag: str) -> str:
    return (tmp / f"{tag}.out").read_text()


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _trained(run: Path) -> list[tuple[int, int]]:
    f = run / "trained.txt"
    return [tuple(int(x) for x in line.split()) for line in f.read_text().splitlines()] if f.is_file() else []


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from data_prep import synthetic

    base = tmp_path_factory.mktemp("lock")
    synthetic.generate(base / "data", cases=5, seed=0)
    return fk.write_search_config(base / "search.yaml", base / "data", base / "runs", budget=BUDGET)


def _check_trained_once_by(run: Path, pid: int) -> None:
    assert sorted(_trained(run)) == [(i, pid) for i in range(1, BUDGET + 1)]  # each trial trained once, by `pid`
    with TrialStore(run / "trials.sqlite") as st:
        rows = st.rows()
    assert [(r.status, r.attempts) for r in rows] == [("done", 1)] * BUDGET


def test_two_searches_at_once_one_runs(config, tmp_path):
    run, gate = tmp_path / "run", tmp_path / "gate"
    procs = [_start(tmp_path, f"s{i}", "search", str(config), "--run-dir", str(run), gate=gate) for i in range(2)]
    try:
        _wait(lambda: any(p.poll() is not None for p in procs), 120, "one of the two searches to stop")
        loser_i = 0 if procs[0].poll() is not None else 1
        loser, winner = procs[loser_i], procs[1 - loser_i]
        assert loser.returncode == 1 and winner.poll() is None
        err = _output(tmp_path, f"s{loser_i}")
        assert err.count("error: ") == 1 and "Traceback" not in err, err
        assert f"is in use by pid {winner.pid} on host" in err and "medseg-nas search" in err and str(run) in err, err
        gate.touch()
        assert winner.wait(timeout=120) == 0, _output(tmp_path, f"s{1 - loser_i}")
    finally:
        gate.touch()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    _check_trained_once_by(run, winner.pid)
    assert (run / LOCK_NAME).read_text() == ""  # released cleanly


def test_resume_beside_a_live_search_is_refused(config, tmp_path, capsys):
    run, gate = tmp_path / "run", tmp_path / "gate"
    live = _start(tmp_path, "live", "search", str(config), "--run-dir", str(run), gate=gate)
    try:
        _wait(lambda: _trained(run) or live.poll() is not None, 120, "the live search's first trial")
        assert live.poll() is None, _output(tmp_path, "live")
        # the resume runs ungated: were it let in, it would train and finish trials at once
        res = subprocess.run([sys.executable, "-c", DRIVER, "search", str(config), "--run-dir", str(run), "--resume"],
                             env=_env(None), capture_output=True, text=True, timeout=120)
        assert res.returncode == 1 and res.stderr.count("error: ") == 1 and "Traceback" not in res.stderr, res.stderr
        assert f"is in use by pid {live.pid} on host" in res.stderr, res.stderr
        with TrialStore(run / "trials.sqlite") as st:
            assert [(r.id, r.status, r.attempts) for r in st.rows()] == [(1, "running", 1)]  # untouched
        # retrain and run on the same directory are refused too (from this process)
        for argv in (["retrain", str(run)], ["run", str(config), "--run-dir", str(run)]):
            capsys.readouterr()
            assert cli(argv) == 1
            assert f"is in use by pid {live.pid} on host" in capsys.readouterr().err, argv
        gate.touch()
        assert live.wait(timeout=120) == 0, _output(tmp_path, "live")
    finally:
        gate.touch()
        if live.poll() is None:
            live.kill()
            live.wait()
    _check_trained_once_by(run, live.pid)


def test_lock_file_of_a_dead_process_does_not_block(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder_p = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], env=_env(None), stdout=subprocess.PIPE, text=True)
    try:
        assert holder_p.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirBusy, match=f"in use by pid {holder_p.pid} on host"):
            with run_dir_lock(run):
                pass
    finally:
        os.kill(holder_p.pid, signal.SIGKILL)
        holder_p.wait()
    assert holder(run)["pid"] == holder_p.pid  # the dead process's lock file is still there
    s = fk.run_fake(str(run), budget=2)
    assert s.n_done == 2
    assert (run / LOCK_NAME).is_file() and holder(run) is None


def test_lock_is_reentrant_in_a_process_and_exclusive_across(tmp_path):
    probe = ("import sys; from medseg_nas.nas.run_lock import run_dir_lock, RunDirBusy\n"
             "try:\n    run_dir_lock(sys.argv[1]).__enter__()\nexcept RunDirBusy:\n    sys.exit(3)")

    def other_process_gets_it() -> bool:
        rc = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], env=_env(None), timeout=60).returncode
        assert rc in (0, 3)
        return rc == 0

    with run_dir_lock(tmp_path):
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["host"] and info["since"]
        with run_dir_lock(tmp_path):  # `run` holding it while its search stage takes it again
            pass
        assert not other_process_gets_it()  # the inner release did not free it
    assert other_process_gets_it()
    with pytest.raises(Exception, match="does not exist"):
        with run_dir_lock(tmp_path / "missing"):
            pass
