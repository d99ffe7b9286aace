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
