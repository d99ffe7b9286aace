"""medseg_nas.postprocess: each class kept to its largest connected component (nnU-Net's step)."""

import numpy as np

from medseg_nas.postprocess import keep_largest_component


def test_keeps_each_classs_largest_component_and_nothing_else():
    a = np.zeros((12, 12, 5), np.int16)
    a[1:4, 1:4, :2] = 1          # class 1: 18 voxels
    a[9, 9, 4] = 1               # class 1: a stray voxel -> removed
    a[5:9, 1:3, :] = 2           # class 2: 40 voxels
    a[9, 3, 4] = 2               # touches class 2's block only at a corner (26-connectivity): kept
    a[0, 11, 0] = 2              # class 2: stray -> removed
    a[10:12, 10:12, 0:2] = 3     # class 3: not asked for -> untouched, even as two pieces
    a[0, 0, 4] = 3
    before = a.copy()
    b = keep_largest_component(a, [1, 2])
    assert np.array_equal(a, before)  # the input is not modified
    assert (b == 1).sum() == 18 and b[9, 9, 4] == 0
    assert (b == 2).sum() == 41 and b[9, 3, 4] == 2 and b[0, 11, 0] == 0
    assert np.array_equal(b == 3, a == 3)
    assert b.dtype == a.dtype and ((b == 0) | (a == b)).all()  # voxels only ever go to background


def test_a_single_component_or_an_absent_class_is_unchanged():
    a = np.zeros((6, 6, 3), np.uint8)
    a[1:3, 1:3, 1] = 1
    assert np.array_equal(keep_largest_component(a, [1, 2]), a)
    assert np.array_equal(keep_largest_component(a, []), a)
