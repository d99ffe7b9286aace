"""`prepare synthetic`: tiny geometric phantoms for tests, plus writers of small fixtures in the
*original* download layouts of MSD (with `._*` AppleDouble files), ACDC and PROMISE12.

A phantom has three touching, non-spherical structures inside a body at anisotropic spacing
(thick slices on the last voxel axis): 3 "cavity" (a rotated, warped ellipsoid), 2 "wall" (a
shell around it), 1 "crescent" (an offset ellipsoid wrapped against the wall). Deterministic
for a seed: the same seed always writes the same voxels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep import GENERATOR_CASES
from data_prep.common import make_msd_dirs, staged_output, write_dataset_json

LABELS = {0: "background", 1: "crescent", 2: "wall", 3: "cavity"}
DEFAULT_SHAPE = (40, 40, 12)
DEFAULT_SPACING = (1.25, 1.25, 4.0)


def phantom(rng: np.random.Generator, shape=DEFAULT_SHAPE, spacing=DEFAULT_SPACING,
            n_labels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """One phantom: (float32 image, uint8 label) of `shape`, world units mm at `spacing`."""
    shape = tuple(int(s) for s in shape)
    spacing = np.asarray(spacing, float)
    ext = np.asarray(shape) * spacing
    g = np.meshgrid(*[(np.arange(n) + 0.5) * s - e / 2 for n, s, e in zip(shape, spacing, ext)], indexing="ij")
    x, y, z = g
    # smooth warp so nothing is an exact ellipsoid
    a, ph = rng.uniform(1.0, 2.5, 3), rng.uniform(0, 2 * np.pi, 3)
    x = x + a[0] * np.sin(y / 7.0 + ph[0])
    y = y + a[1] * np.sin(z / 9.0 + x / 11.0 + ph[1])
    z = z + a[2] * np.sin(x / 8.0 + ph[2])
    th = rng.uniform(0, np.pi)
    xr, yr = np.cos(th) * x - np.sin(th) * y, np.sin(th) * x + np.cos(th) * y
    scale = min(ext[0], ext[1]) / 40.0
    c = rng.uniform(-2, 2, 3) * scale
    r = np.array([rng.uniform(5, 8), rng.uniform(3.5, 6), rng.uniform(0.25, 0.35) * ext[2]]) * np.array([scale, scale, 1])
    q = ((xr - c[0]) / r[0]) ** 2 + ((yr - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2
    cavity = q <= 1.0
    wall = (q <= rng.uniform(1.7, 2.2)) & ~cavity
    off = (r[0] + rng.uniform(2.5, 4.0) * scale)
    q2 = ((xr - c[0] - off) / (r[0] * 0.9)) ** 2 + ((yr - c[1]) / (r[1] * 1.5)) ** 2 + ((z - c[2]) / (r[2] * 1.1)) ** 2
    crescent = (q2 <= 1.0) & ~cavity & ~wall
    body = (x / (ext[0] * 0.45)) ** 2 + (y / (ext[1] * 0.45)) ** 2 <= 1.0
    label = np.zeros(shape, np.uint8)
    label[crescent] = 1
    label[wall] = 2
    label[cavity] = 3
    if n_labels < 3:
        label[label > n_labels] = 0
    means = np.array([0.0, 0.55, 0.35, 0.85]) + rng.normal(0, 0.03, 4)
    image = np.where(body, 0.25, 0.02).astype(np.float32)
    for k in (1, 2, 3):
        image[label == k] = means[k]
    bias = 1.0 + 0.15 * np.sin(x / ext[0] * np.pi + rng.uniform(0, 6.28)) * np.cos(y / ext[1] * np.pi)
    image = image * bias + rng.normal(0, 0.05, shape)
    return (image * 1000).astype(np.float32), label


def affine_for(spacing, shape, rotation_deg: float = 0.0, flip_x: bool = False) -> np.ndarray:
    """A scanner-like affine: optional in-plane flip and a tilt about the first axis."""
    t = np.deg2rad(rotation_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    m = rot @ np.diag(spacing)
    if flip_x:
        m[:, 0] *= -1
    aff = np.eye(4)
    aff[:3, :3] = m
    aff[:3, 3] = -m @ (np.asarray(shape) / 2.0)
    return aff


def _save(data: np.ndarray, affine: np.ndarray, path: Path, dtype=None) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data if dtype is None else data.astype(dtype), affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))


def write_msd(root: Path, cases: int, seed: int, shape=DEFAULT_SHAPE, spacing=DEFAULT_SPACING,
              name: str = "SyntheticPhantoms", stamp: dict | None = None, n_test: int = 0) -> dict:
    """Write phantoms straight into `root` in MSD layout (no staging)."""
    rng = np.random.default_rng(seed)
    make_msd_dirs(root, with_test=n_test > 0)
    training, tests = [], []
    for i in range(cases + n_test):
        img, lab = phantom(rng, shape, spacing)
        aff = affine_for(spacing, shape)
        case = f"phantom_{i:03d}"
        if i < cases:
            _save(img, aff, root / "imagesTr" / f"{case}.nii.gz")
            _save(lab, aff, root / "labelsTr" / f"{case}.nii.gz", np.uint8)
            training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
        else:
            _save(img, aff, root / "imagesTs" / f"{case}.nii.gz")
            tests.append(f"./imagesTs/{case}.nii.gz")
    return write_dataset_json(
        root, name=name, description="Synthetic phantoms: three touching structures, anisotropic spacing",
        modality={0: "MRI"}, labels=LABELS, training=training, test=tests,
        stamp=stamp or {"source": "synthetic", "cases": cases, "seed": seed},
    )


def generate(dst: str | Path, cases: int = GENERATOR_CASES["synthetic"], seed: int = 0, force: bool = False) -> dict:
    """`prepare synthetic`: `cases` phantoms in MSD layout at `dst` (staged, then moved into place)."""
    if cases < 1:
        from medseg_nas.errors import DataError

        raise DataError(f"--cases must be >= 1, got {cases}")
    with staged_output(dst, None, force) as tmp:
        meta = write_msd(tmp, cases, seed)
    return meta


# ---------------------------------------------------------------- raw-layout fixtures (tests)

def write_msd_fixture(root: str | Path, cases: int = 4, seed: int = 0, appledouble: bool = True) -> Path:
    """An MSD task as downloaded, including macOS `._*` AppleDouble junk next to the volumes."""
    root = Path(root)
    write_msd(root, cases, seed, name="TaskXX_Phantom", n_test=1)
    if appledouble:
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            for p in list((root / sub).glob("*.nii.gz")):
                (root / sub / f"._{p.name}").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
        (root / "._dataset.json").write_bytes(b"\x00\x05\x16\x07")
    return root


def write_acdc_fixture(root: str | Path, patients: int = 2, seed: int = 0, first_id: int = 1,
                       spacing=(1.5625, 1.5625, 10.0), shape=(48, 48, 8), n_frames: int = 12,
                       rotation_deg: float = 15.0) -> Path:
    """ACDC layout: patientXXX/{Info.cfg, _4d, _frameNN, _frameNN_gt}, thick slices (10 mm)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for p in range(first_id, first_id + patients):
        pid = f"patient{p:03d}"
        pdir = root / pid
        pdir.mkdir(parents=True, exist_ok=True)
        ed, es = 1, int(rng.integers(6, n_frames))
        (pdir / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 175.0\nNbFrame: {n_frames}\nWeight: 70.0\n")
        aff = affine_for(spacing, shape, rotation_deg=rotation_deg, flip_x=True)
        frames = {}
        for f in (ed, es):
            img, lab = phantom(rng, shape, spacing)
            frames[f] = img
            _save(img.astype(np.int16), aff, pdir / f"{pid}_frame{f:02d}.nii.gz")
            _save(lab, aff, pdir / f"{pid}_frame{f:02d}_gt.nii.gz", np.uint8)
        cine = np.stack([frames[ed]] * 2, axis=-1).astype(np.int16)
        _save(cine, aff, pdir / f"{pid}_4d.nii.gz")
    return root


def write_promise12_fixture(root: str | Path, n_train: int = 2, n_test: int = 1, seed: int = 0,
                            spacing=(0.625, 0.625, 3.6), shape=(48, 48, 10)) -> Path:
    """PROMISE12 layout: CaseXX.mhd/.raw and CaseXX_segmentation.mhd/.raw (no segmentation = test)."""
    import SimpleITK as sitk

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n_train + n_test):
        img, lab = phantom(rng, shape, spacing, n_labels=3)
        lab = (lab > 0).astype(np.uint8)
        # SimpleITK arrays are z, y, x
        im = sitk.GetImageFromArray(np.transpose(img, (2, 1, 0)).astype(np.int16))
        im.SetSpacing(tuple(float(s) for s in spacing))
        im.SetOrigin((-15.0, -20.0, 30.0))
        name = f"Case{i:02d}"
        sitk.WriteImage(im, str(root / f"{name}.mhd"), False)
        if i < n_train:
            lb = sitk.GetImageFromArray(np.transpose(lab, (2, 1, 0)))
            lb.CopyInformation(im)
            sitk.WriteImage(lb, str(root / f"{name}_segmentation.mhd"), False)
    return root
