"""Data loading for medseg-nas: MSD datalists, fixed splits, fingerprints, plans and MONAI pipelines.

    datalist = load_datalist(root)
    split = make_split(datalist, seed, val_fraction, test_fraction)      # split.save(run/"split.json")
    fp = compute_fingerprint(root, datalist, cache_path=run/"fingerprint.json")
    plan = make_plan(fp, cfg.data)                                        # plan.to_dict() -> plan.json / checkpoints
    bundle = build_datasets(datalist, split, plan, cfg.data)              # bundle.reseed(trial_seed)

    data = load_data(root, cfg.data)                                      # the chain above in one call
    data = load_data(root, cfg.data, files=RunDir(run).data_files())      # ... kept in a run directory

See docs/ARCHITECTURE.md for the contract.
"""

from medseg_nas.data.datalist import load_datalist, load_dataset_json
from medseg_nas.data.dataset_root import ensure_dataset
from medseg_nas.data.datasets import DataBundle, build_datasets, clear_cache
from medseg_nas.data.fingerprint import Fingerprint, compute_fingerprint
from medseg_nas.data.loaded import DataFiles, LoadedData, load_data, split_from_config
from medseg_nas.data.plan import DataPlan, make_plan
from medseg_nas.data.split import Split, case_groups, make_split
from medseg_nas.data.transforms import inference_transforms, preprocess_transforms, train_transforms

__all__ = [
    "DataBundle", "DataFiles", "DataPlan", "Fingerprint", "LoadedData", "Split", "build_datasets", "case_groups",
    "clear_cache", "compute_fingerprint", "ensure_dataset", "inference_transforms", "load_data", "load_datalist",
    "load_dataset_json", "make_plan", "make_split", "preprocess_transforms", "split_from_config", "train_transforms",
]
