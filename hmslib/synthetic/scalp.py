"""The scalp of the synthetic generator: electrode positions and the derivations built on them."""

from __future__ import annotations

import numpy as np

from hmslib.constants import CHAINS, EEG_CHANNELS

#: Scalp electrode positions (x: left -1 .. right +1, y: back -1 .. front +1), ``SCALP_CHANNELS`` order.
POS = np.array(
    [
        (-0.31, 0.95), (-0.39, 0.55), (-0.50, 0.00), (-0.39, -0.55), (-0.81, 0.59), (-1.00, 0.00),
        (-0.81, -0.59), (-0.31, -0.95), (0.00, 0.50), (0.00, 0.00), (0.00, -0.50), (0.31, 0.95),
        (0.39, 0.55), (0.50, 0.00), (0.39, -0.55), (0.81, 0.59), (1.00, 0.00), (0.81, -0.59),
        (0.31, -0.95),
    ]
)  # fmt: skip

CH = {name: i for i, name in enumerate(EEG_CHANNELS)}

TEMPORAL = np.array([CH[c] for c in ("F7", "F8", "T3", "T4", "T5", "T6", "Fp1", "Fp2")])

EKG_ROW = CH["EKG"]

#: Electrode indices of the 16 double-banana derivations (active, reference).
PAIRS = np.array(
    [(CH[a], CH[b]) for c in CHAINS.values() for a, b in zip(c, c[1:], strict=False)]
)


def gauss(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """Unit-height Gaussian bump."""
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2)


def triangle(u: np.ndarray) -> np.ndarray:
    """Triangle wave of period 1 in ``[-1, 1]`` (0 at ``u = 0``, rising)."""
    return 4.0 * np.abs(np.mod(u - 0.25, 1.0) - 0.5) - 1.0
