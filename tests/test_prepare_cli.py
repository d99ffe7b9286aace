"""`medseg-nas prepare ...` through the real CLI: one-line errors, exit codes, prepare_from_config."""

import json

import pytest

from data_prep import prepare_from_config
from data_prep.synthetic import write_acdc_fixture
from medseg_nas.cli import main
from medseg_nas.config import PrepareConfig
from medseg_nas.errors import DataError


def test_synthetic_via_cli(tmp_path, capsys):
    assert main(["prepare", "synthetic", "--dst", str(tmp_path / "s"), "--cases", "2", "--seed", "1"]) == 0
    assert "2 training case(s)" in capsys.readouterr().out
    assert json.loads((tmp_path / "s" / "dataset.json").read_text())["numTraining"] == 2


def test_errors_are_one_line_exit_1(tmp_path, capsys):
    raw = write_acdc_fixture(tmp_path / "training", patients=1)
    gt = sorted((raw / "patient001").glob("*_gt.nii.gz"))[0]
    gt.unlink()
    rc = main(["prepare", "acdc", "--src", str(raw), "--dst", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error:") and gt.name in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_non_empty_dst_and_force(tmp_path, capsys):
    dst = tmp_path / "d"
    assert main(["prepare", "synthetic", "--dst", str(dst), "--cases", "1"]) == 0
    assert main(["prepare", "synthetic", "--dst", str(dst), "--cases", "2"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["prepare", "synthetic", "--dst", str(dst), "--cases", "2", "--force"]) == 0
    assert json.loads((dst / "dataset.json").read_text())["numTraining"] == 2


def test_missing_src_folder(tmp_path, capsys):
    assert main(["prepare", "msd", "--src", str(tmp_path / "nope"), "--dst", str(tmp_path / "o")]) == 1
    assert "nope does not exist" in capsys.readouterr().err


def test_source_required(capsys):
    with pytest.raises(SystemExit):
        main(["prepare"])


def test_prepare_from_config_reuses_and_guards(tmp_path):
    cfg = PrepareConfig(source="synthetic", cases=2, seed=4)
    dst = prepare_from_config(cfg, tmp_path / "data")
    stamp = (dst / "dataset.json").stat().st_mtime_ns
    assert prepare_from_config(cfg, dst) == dst  # same settings: reused, not rebuilt
    assert (dst / "dataset.json").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="already holds"):
        prepare_from_config(PrepareConfig(source="synthetic", cases=3, seed=4), dst)
    prepare_from_config(PrepareConfig(source="synthetic", cases=3, seed=4), dst, force=True)
    assert json.loads((dst / "dataset.json").read_text())["numTraining"] == 3
    with pytest.raises(DataError, match="needs a source folder"):
        prepare_from_config(PrepareConfig(source="acdc"), tmp_path / "x")
