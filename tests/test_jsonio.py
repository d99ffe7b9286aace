"""The shared json.dumps hook: every value the run directory stores becomes plain JSON."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medseg_nas.jsonio import json_default


@dataclass
class _Point:
    x: int
    y: tuple


def test_json_default_makes_plain_values():
    doc = {"f": np.float32(0.5), "i": np.int64(3), "a": np.arange(3), "t": torch.tensor([1.0, 2.0]),
           "s": torch.tensor(4), "d": _Point(1, (2, 3)), "set": {7}, "p": Path("x/y")}
    assert json.loads(json.dumps(doc, default=json_default)) == {
        "f": 0.5, "i": 3, "a": [0, 1, 2], "t": [1.0, 2.0], "s": 4, "d": {"x": 1, "y": [2, 3]}, "set": [7], "p": "x/y"}
