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


def _truncate(path):
    path.write_bytes(path.read_bytes()[: max(len(path.read_bytes()) // 3, 1)])
    return path.name


def _msd_truncated(tmp_path):
    from data_prep.synthetic import write_msd_fixture

    raw = write_msd_fixture(tmp_path / "Task99", cases=2)
    return "msd", raw, _truncate(raw / "imagesTr" / "phantom_001.nii.gz")


def _msd_affine(tmp_path):
    import nibabel as nib

    from data_prep.synthetic import write_msd_fixture

    raw = write_msd_fixture(tmp_path / "Task99", cases=2)
    lab = raw / "labelsTr" / "phantom_000.nii.gz"
    img = nib.load(str(lab))
    aff = img.affine.copy()
    aff[1, 3] += 4.0
    nib.save(nib.Nifti1Image(img.get_fdata().astype("uint8"), aff), str(lab))
    return "msd", raw, lab.name


def _acdc_labels(tmp_path):
    import nibabel as nib

    raw = write_acdc_fixture(tmp_path / "training", patients=1)
    gt = sorted((raw / "patient001").glob("*_gt.nii.gz"))[0]
    img = nib.load(str(gt))
    data = img.get_fdata().astype("uint8")
    data[0, 0, 0] = 9
    nib.save(nib.Nifti1Image(data, img.affine), str(gt))
    return "acdc", raw, gt.name


def _promise_truncated(tmp_path):
    from data_prep.synthetic import write_promise12_fixture

    raw = write_promise12_fixture(tmp_path / "p", n_train=2, n_test=0)
    _truncate(raw / "Case01_segmentation.raw")
    return "promise12", raw, "Case01_segmentation.mhd"


def _promise_garbage_header(tmp_path):
    from data_prep.synthetic import write_promise12_fixture

    raw = write_promise12_fixture(tmp_path / "p", n_train=2, n_test=0)
    (raw / "Case00.mhd").write_bytes(b"\x00\x01garbage\nnot a header\n")
    return "promise12", raw, "Case00.mhd is unreadable or truncated (Unable to determine ImageIO reader"


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    return "acdc", tmp_path / "empty", "empty"


@pytest.mark.parametrize("make", [_msd_truncated, _msd_affine, _acdc_labels, _promise_truncated,
                                  _promise_garbage_header, _empty])
def test_bad_inputs_one_line_naming_the_file(tmp_path, capsys, make):
    source, raw, name = make(tmp_path)
    dst = tmp_path / "out"
    rc = main(["prepare", source, "--src", str(raw), "--dst", str(dst)])
    cap = capsys.readouterr()
    assert rc == 1 and "Traceback" not in cap.err + cap.out
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and name in lines[0], cap.err
    assert not dst.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_dst_inside_src_via_cli(tmp_path, capsys):
    raw = write_acdc_fixture(tmp_path / "training", patients=1)
    assert main(["prepare", "acdc", "--src", str(raw), "--dst", str(raw / "out")]) == 1
    err = capsys.readouterr().err
    assert "inside --src" in err and len(err.strip().splitlines()) == 1
    assert not (raw / "out").exists()
