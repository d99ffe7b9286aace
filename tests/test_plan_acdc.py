"""The data plan on ACDC-shaped volumes (1.5625 x 1.5625 x 10 mm, 6-18 slices, as the 160 real
frames in ../shared/data/ACDC are): thick axis last, not pooled until the in-plane spacing is
within 2x of it, and a frame with fewer slices than the patch is padded, not refused. Written on
small files of that shape; the real cases are never copied here."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from medseg_nas.config import DataConfig
from medseg_nas.data.fingerprint import compute_fingerprint
from medseg_nas.data.plan import make_plan
from medseg_nas.data.transforms import train_transforms
from medseg_nas.space.plan import plan_from_spacing

ACDC_SPACING = (1.5625, 1.5625, 10.0)


def _write_frames(root, shapes):
    """MSD-layout frames with ACDC's nominal spacing and a blob of each of labels 1-3."""
    import json

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    affine = np.diag([*ACDC_SPACING, 1.0])
    training = []
    rng = np.random.default_rng(0)
    for i, shape in enumerate(shapes):
        img = rng.normal(size=shape).astype(np.float32)
        lab = np.zeros(shape, np.uint8)
        cx, cy = shape[0] // 2, shape[1] // 2
        lab[cx - 6:cx + 6, cy - 6:cy + 6, :] = 3
        lab[cx - 9:cx - 6, cy - 6:cy + 6, :] = 2
        lab[cx + 6:cx + 12, cy - 6:cy + 6, :] = 1
        nib.save(nib.Nifti1Image(img, affine), str(root / "imagesTr" / f"p{i:03d}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, affine), str(root / "labelsTr" / f"p{i:03d}.nii.gz"))
        training.append({"image": f"./imagesTr/p{i:03d}.nii.gz", "label": f"./labelsTr/p{i:03d}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({
        "name": "acdc-shaped", "modality": {"0": "MRI"}, "training": training, "test": [],
        "labels": {"0": "background", "1": "RV cavity", "2": "myocardium", "3": "LV cavity"}}))
    return root


def test_strides_follow_nnunet_on_acdc_spacing():
    # level 1: 10 mm > 2 x 1.56 -> in-plane only; level 2: 10 > 2 x 3.1 -> in-plane only;
    # level 3: 10 <= 2 x 6.25 -> all axes; level 4: the 8-slice patch is down to 4 slices -> in-plane
    plan = plan_from_spacing(ACDC_SPACING, [128, 128, 8])
    assert plan.strides == ((2, 2, 1), (2, 2, 1), (2, 2, 2), (2, 2, 1))


def test_planned_patch_and_padding_of_a_six_slice_frame(tmp_path):
    from medseg_nas.data import load_datalist

    root = _write_frames(tmp_path / "acdc", [(64, 72, 9), (64, 72, 9), (72, 64, 6)])
    datalist = load_datalist(root)
    fp = compute_fingerprint(root, datalist)
    assert fp.thick_axis == 2 and fp.anisotropy == 6.4
    plan = make_plan(fp, DataConfig())
    assert plan.axcodes == "RAS" and plan.target_spacing == list(ACDC_SPACING)
    assert plan.patch_size[2] == 8 and plan.network_plan.strides[0] == (2, 2, 1)
    six = next(d for d in datalist if d["id"] == "p002")
    out = train_transforms(plan, augment="none")(six)
    sample = out[0] if isinstance(out, list) else out
    assert tuple(sample["image"].shape[1:]) == tuple(plan.patch_size)  # 6 slices padded to the patch's 8
    assert set(np.unique(np.asarray(sample["label"])).tolist()) <= {0, 1, 2, 3}
