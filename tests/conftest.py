"""Shared fixtures: the real competition samples (``HMS_SAMPLES``).

Small synthetic data sets are made by the test modules that need them (``synthetic.generate``).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def samples_dir() -> Path:
    """Folder of the real HMS sample files (``$HMS_SAMPLES``, default ``../shared/hms-samples``).

    The one definition is :func:`hmslib.pipeline.samples_dir` (notebook 07 uses it too); it is
    imported here lazily, so that collecting the tests does not import torch.
    """
    from hmslib.pipeline import samples_dir as library_samples_dir

    return library_samples_dir()


@pytest.fixture(scope="session")
def hms_samples() -> Path:
    """The real sample folder; skips the test with the reason when it is absent."""
    path = samples_dir()
    if not (path / "train.csv").is_file():
        pytest.skip(f"real HMS samples not found at {path} (set HMS_SAMPLES to the hms-samples folder)")
    return path
