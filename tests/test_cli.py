"""The CLI: every stage exists; unfinished stages say so and exit 2."""

import subprocess
import sys

from medseg_nas.cli import STAGES, main


def test_all_stages_listed():
    assert set(STAGES) == {"prepare", "search", "retrain", "evaluate", "export", "predict", "report", "run"}


def test_unbuilt_stage_exits_2(capsys):
    missing = [name for name, (module, _) in STAGES.items() if module is None]
    for name in missing:
        assert main([name]) == 2
        assert "not implemented yet" in capsys.readouterr().err


def test_console_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "medseg_nas", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "search" in out.stdout
