"""The typed config rejects what it does not understand, by name."""

import pytest

from medseg_nas.config import Config, config_from_dict, load_config, save_config
from medseg_nas.errors import ConfigError


def test_defaults_are_valid():
    cfg = config_from_dict({})
    assert isinstance(cfg, Config) and cfg.search.strategy == "samea"


def test_unknown_key_named_with_suggestion(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("serach:\n  strategy: dmls\n")
    with pytest.raises(ConfigError, match=r"unknown key 'serach' in .*x\.yaml; did you mean 'search'\?"):
        load_config(p)


def test_nested_unknown_key_and_bad_type(tmp_path):
    p = tmp_path / "y.yaml"
    p.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.epochz'.*did you mean 'epochs'"):
        load_config(p)
    p.write_text("train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match=r"train.epochs.*expected an integer"):
        load_config(p)


def test_choices_and_space_checked():
    with pytest.raises(ConfigError, match="search.strategy"):
        config_from_dict({"search": {"strategy": "ga"}})
    with pytest.raises(ConfigError, match="did you mean 'conv3d_3'"):
        config_from_dict({"space": {"ops": ["conv3d_33"]}})
    with pytest.raises(ConfigError, match="retrain.max_params"):
        config_from_dict({"retrain": {"max_params": -1}})
    assert config_from_dict({"retrain": {"max_params": 500000}}).retrain.max_params == 500000


def test_overrides_and_round_trip(tmp_path):
    cfg = config_from_dict({"train": {"epochs": 4}}, overrides=["train.epochs=7", "search.seed=3", "space.lr_min=1e-4"])
    assert cfg.train.epochs == 7 and cfg.search.seed == 3 and cfg.space.lr_min == 1e-4
    p = tmp_path / "c.yaml"
    save_config(cfg, p)
    assert load_config(p) == cfg


def test_missing_file_message(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_load():
    from pathlib import Path

    configs = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


# --- loader errors: one clear line, never a traceback (through the CLI as the user meets them) ---


def _cli_error(capsys, argv) -> str:
    from medseg_nas.cli import main

    rc = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_top_level_list_or_scalar(tmp_path, capsys):
    p = tmp_path / "l.yaml"
    p.write_text("- train\n- search\n")
    assert "l.yaml must hold a mapping of sections" in _cli_error(capsys, ["run", str(p)])
    p.write_text("just words\n")
    with pytest.raises(ConfigError, match="not a str"):
        load_config(p)


def test_non_utf8_file(tmp_path, capsys):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "latin1.yaml is not UTF-8 text (byte 0xe9 at offset 9)" in _cli_error(capsys, ["run", str(p)])


def test_yaml_syntax_error_is_one_line(tmp_path, capsys):
    p = tmp_path / "broken.yaml"
    p.write_text("train:\n  epochs: [3\n")
    line = _cli_error(capsys, ["run", str(p)])
    assert "broken.yaml is not valid YAML" in line and "line 3" in line


def test_malformed_set_values(tmp_path, capsys):
    p = tmp_path / "ok.yaml"
    p.write_text("train:\n")
    line = _cli_error(capsys, ["run", str(p), "--set", "train.epochs=[1"])
    assert "override 'train.epochs=[1': the value '[1' is not valid YAML" in line
    line = _cli_error(capsys, ["search", str(p), "--set", "name=a: b: c"])
    assert "not valid YAML (mapping values are not allowed here" in line
    with pytest.raises(ConfigError, match="not valid YAML"):  # no python/object tags either
        config_from_dict({}, overrides=["name=!!python/object/apply:os.system ['true']"])
    with pytest.raises(ConfigError, match="dotted names"):
        config_from_dict({}, overrides=["train..epochs=3"])
    with pytest.raises(ConfigError, match="dotted names"):
        config_from_dict({}, overrides=["=3"])


def test_set_into_an_empty_section(tmp_path):
    p = tmp_path / "empty_section.yaml"
    p.write_text("train:\n")  # YAML null: --set must still reach train.epochs
    assert load_config(p, ["train.epochs=3"]).train.epochs == 3


def test_non_finite_numbers_refused():
    with pytest.raises(ConfigError, match="objectives.alpha.*expected a finite number, got nan"):
        config_from_dict({"objectives": {"alpha": float("nan")}})
    with pytest.raises(ConfigError, match="expected a finite number"):
        config_from_dict({}, overrides=["space.lr_min=.inf"])


def test_overrides_leave_the_callers_dict_alone():
    """`--set a.b=...` on a dict config must not write into the caller's nested sections."""
    from medseg_nas.config import config_from_dict

    base = {"space": {"cell": "residual"}, "train": {"epochs": 3}}
    cfg = config_from_dict(base, overrides=["space.cell=emonas", "train.epochs=5"])
    assert cfg.space.cell == "emonas" and cfg.train.epochs == 5
    assert base == {"space": {"cell": "residual"}, "train": {"epochs": 3}}
