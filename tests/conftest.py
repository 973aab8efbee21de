"""Shared fixtures: the real competition samples (``HMS_SAMPLES``) and small synthetic folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def samples_dir() -> Path:
    """Folder of the real HMS sample files (``$HMS_SAMPLES``, default ``../shared/hms-samples``)."""
    return Path(os.environ.get("HMS_SAMPLES", REPO.parent / "shared" / "hms-samples"))


@pytest.fixture(scope="session")
def hms_samples() -> Path:
    """The real sample folder; skips the test with the reason when it is absent."""
    path = samples_dir()
    if not (path / "train.csv").is_file():
        pytest.skip(f"real HMS samples not found at {path} (set HMS_SAMPLES to the hms-samples folder)")
    return path
