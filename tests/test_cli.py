"""The CLI: every stage exists, answers --help, and reports a user error as one line (exit 1)."""

import subprocess
import sys

from medseg_nas.cli import STAGES, main


def test_all_stages_listed():
    assert set(STAGES) == {"prepare", "search", "retrain", "evaluate", "export", "predict", "report", "run"}


def test_console_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "medseg_nas", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "search" in out.stdout


def test_user_error_is_one_line_and_exit_1(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "torchscript"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and err.count("\n") == 1
