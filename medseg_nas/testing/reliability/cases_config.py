"""Bad config files, `--set` overrides and pre-flight refusals."""

from __future__ import annotations

from pathlib import Path

from medseg_nas.testing.reliability.builders import (  # noqa: F401 — not every module uses every helper
    DOLLAR_EXPRESSION, held_lock, msd_download, prepare_cmd, run_cmd, searched_run_dir, synthetic_dataset,
    tiny_checkpoint, write_config, write_nifti)
from medseg_nas.testing.reliability.harness import case


# --- the cases ---------------------------------------------------------------------------------
# config file and --set (medseg_nas/config.py's loader)

@case("config", "config file that does not exist")
def config_missing(d: Path) -> list[str]:
    return ["run", str(d / "missing.yaml")]


@case("config", "config file that is not YAML (`train: {epochs: 3`)")
def config_not_yaml(d: Path) -> list[str]:
    return run_cmd(d, "train: {epochs: 3\n")


@case("config", "config file whose top level is a list (`- train`)")
def config_top_list(d: Path) -> list[str]:
    return run_cmd(d, "- train\n- search\n")


@case("config", "config file that is not UTF-8 (Latin-1 é)")
def config_latin1(d: Path) -> list[str]:
    return run_cmd(d, "name: caf\xe9\n".encode("latin-1"))


@case("config", "misspelt key (`serach:`)")
def config_typo(d: Path) -> list[str]:
    return run_cmd(d, {"serach": {"strategy": "dmls"}})


@case("config", "value of the wrong type (`train.epochs: many`)")
def config_wrong_type(d: Path) -> list[str]:
    return run_cmd(d, {"train": {"epochs": "many"}})


@case("config", "section given as a value (`train: 5`)")
def config_section_scalar(d: Path) -> list[str]:
    return run_cmd(d, {"train": 5})


@case("config", "not-a-number where a number is needed (`objectives.alpha: .nan`)")
def config_nan(d: Path) -> list[str]:
    return run_cmd(d, "objectives:\n  alpha: .nan\n")


@case("config", "value outside its choices (`search.strategy: ga`)")
def config_bad_choice(d: Path) -> list[str]:
    return run_cmd(d, {"search": {"strategy": "ga"}})


@case("config", "unknown operation in the search space (`space.ops: [conv3d_33]`)")
def config_bad_op(d: Path) -> list[str]:
    return run_cmd(d, {"space": {"ops": ["conv3d_33"]}})


@case("config", "`--set` value that is not YAML")
def set_not_yaml(d: Path) -> list[str]:
    return run_cmd(d, {}, "--set", "train.epochs=[1")


@case("config", "`--set` without `=`")
def set_no_equals(d: Path) -> list[str]:
    return run_cmd(d, {}, "--set", "train.epochs")


@case("config", "`--set` of a value of the wrong type")
def set_wrong_type(d: Path) -> list[str]:
    return run_cmd(d, {}, "--set", "data.patch_size=32")


@case("config", "no search budget at all (`budget_trials: 0`, `budget_hours: 0`)")
def config_no_budget(d: Path) -> list[str]:
    return run_cmd(d, {"search": {"budget_trials": 0, "budget_hours": 0}})


@case("config", "YAML alias bomb under a string key (`name:` nine levels of nine `*alias`es)")
def config_alias_bomb(d: Path) -> list[str]:
    anchors = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return run_cmd(d, f"name: [{', '.join(anchors)}]\n")


@case("config", "config file of more than 1 MB")
def config_oversized(d: Path) -> list[str]:
    return run_cmd(d, "# " + "x" * 1_100_000 + "\nname: big\n")


@case("config", "a long value quoted in an error (a 12,000-number list as `name`)")
def config_long_value(d: Path) -> list[str]:
    return run_cmd(d, {"name": [[list(range(200)) for _ in range(20)] for _ in range(3)]})


# pre-flight of `run` (medseg_nas/preflight.py): refused before the search starts

@case("pre-flight", "retrain budget of 0 epochs (`retrain.epochs: 0`)")
def retrain_zero_epochs(d: Path) -> list[str]:
    return run_cmd(d, {"retrain": {"epochs": 0}})


@case("pre-flight", "misspelt retrain pick (`retrain.pick: kne`)")
def retrain_bad_pick(d: Path) -> list[str]:
    return run_cmd(d, {"retrain": {"pick": "kne"}})


@case("pre-flight", "`train.device: cuda`", no_cuda=True)
def device_no_cuda(d: Path) -> list[str]:
    return run_cmd(d, {"train": {"device": "cuda"}})


@case("pre-flight", "`train.device` that is not a device (`gpu`)")
def device_not_a_device(d: Path) -> list[str]:
    return run_cmd(d, {"train": {"device": "gpu"}})


def _samea_sizes(n: int, t: int) -> dict:
    """SaMEA's population N and neighbourhood T (the authors' names)."""
    return {"search": {"strategy": "samea", "samea": {"N": n, "T": t}}}


@case("pre-flight", "SaMEA with one subproblem (population 1)")
def samea_one_subproblem(d: Path) -> list[str]:
    return run_cmd(d, _samea_sizes(1, 1))


@case("pre-flight", "SaMEA neighbourhood larger than the population (4 subproblems, neighbourhood 6)")
def samea_big_neighbourhood(d: Path) -> list[str]:
    return run_cmd(d, _samea_sizes(4, 6))


@case("pre-flight", "NSGA-II population of 1 (`search.nsga2.pop_size: 1`)")
def nsga2_pop_one(d: Path) -> list[str]:
    return run_cmd(d, {"search": {"strategy": "nsga2", "nsga2": {"pop_size": 1}}})


@case("pre-flight", "DMLS with an empty initial archive (`search.dmls.initial_archive_size: 0`)")
def dmls_empty_archive(d: Path) -> list[str]:
    return run_cmd(d, {"search": {"strategy": "dmls", "dmls": {"initial_archive_size": 0}}})


@case("pre-flight", "cross-validation fold outside the folds (`data.n_folds: 5`, `data.fold: 5`)")
def fold_out_of_range(d: Path) -> list[str]:
    return run_cmd(d, {"data": {"n_folds": 5, "fold": 5}})


@case("pre-flight", "patch size the network cannot halve (`data.patch_size: [30, 30, 30]`)")
def patch_30(d: Path) -> list[str]:
    return run_cmd(d, {"data": {"patch_size": [30, 30, 30]}})


@case("pre-flight", "`export.formats` with onnx after a plain `pip install medseg-nas`", missing=("onnx", "onnxruntime"))
def onnx_not_installed(d: Path) -> list[str]:
    return run_cmd(d, {"export": {"formats": ["torchscript", "onnx", "bundle"]}})


@case("pre-flight", "Ray executor (`executor.kind: ray`)", missing=("ray",))
def ray_not_installed(d: Path) -> list[str]:
    return run_cmd(d, {"executor": {"kind": "ray"}})


@case("pre-flight", "`search` with NSGA-II population of 1")
def search_nsga2_pop_one(d: Path) -> list[str]:
    return ["search", str(write_config(d, {"search": {"nsga2": {"pop_size": 1}}})), "--strategy", "nsga2",
            "--run-dir", str(d / "run")]


@case("pre-flight", "implausible trial budget (`train.iters_per_epoch: 1000000000`)")
def implausible_iters(d: Path) -> list[str]:
    return run_cmd(d, {"train": {"iters_per_epoch": 1_000_000_000}})


@case("pre-flight", "implausible retrain budget (`retrain.epochs: 100000`, `iters_per_epoch: 1000`)")
def implausible_retrain(d: Path) -> list[str]:
    return run_cmd(d, {"retrain": {"epochs": 100_000, "iters_per_epoch": 1000}})
