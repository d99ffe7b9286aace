"""Fixtures more than one test module needs. Helpers that scripts or worker processes also use
live in `medseg_nas.testing`; this file holds only what is pytest-specific."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# the 214 real MSD hippocampus cases beside the repository (../shared/data, CC-BY-SA 4.0; read in
# place, never copied); MEDSEG_HIPPOCAMPUS points elsewhere
HIPPOCAMPUS = Path(os.environ.get("MEDSEG_HIPPOCAMPUS", Path(__file__).resolve().parents[2] / "shared" / "data" / "Task04_Hippocampus"))


@pytest.fixture
def hippocampus_root() -> Path:
    """The real Task04_Hippocampus folder; the test is skipped where it is not available."""
    if not HIPPOCAMPUS.is_dir():
        pytest.skip(f"real Task04_Hippocampus not available at {HIPPOCAMPUS}")
    return HIPPOCAMPUS
