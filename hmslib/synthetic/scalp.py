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


# --------------------------------------------------------------------------------------------------
# volume conduction: sources on a cortical sheet seen through skull and scalp
# --------------------------------------------------------------------------------------------------

#: Polar angle (rad from the vertex, Cz) of the outer 10-20 ring (Fp1, F7, T3, T5, O1, ...): the
#: 10 % points above the nasion, the preauricular points and the inion.
_OUTER_RING_RAD = np.deg2rad(90.0 - 18.0 * 0.5)

#: Sources on the sheet: directions of a Fibonacci lattice over the cap down to 120 degrees.
_N_SHEET = 400


def sphere_position(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unit vectors of plane scalp positions (azimuthal equidistant projection around Cz)."""
    r = np.hypot(x, y)
    theta = r * _OUTER_RING_RAD
    phi = np.arctan2(y, x)
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)


#: Electrode positions on the unit sphere ``(19, 3)``: x to the right, y to the front, z up.
XYZ = sphere_position(POS[:, 0], POS[:, 1])


def _sheet() -> np.ndarray:
    """Source directions ``(_N_SHEET, 3)``: a Fibonacci lattice over the cap ``theta <= 120 deg``."""
    k = np.arange(_N_SHEET) + 0.5
    z = 1.0 - (1.0 - np.cos(np.deg2rad(120.0))) * k / _N_SHEET
    phi = np.pi * (1.0 + 5**0.5) * k
    s = np.sqrt(1.0 - z**2)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=-1)


SHEET = _sheet()


def lead_field(width: float, sources: np.ndarray = SHEET) -> np.ndarray:
    """Scalp gain ``(19, n_sources)`` of unit radial sources on the cortical sheet.

    Each source's potential spreads over the scalp as a Gaussian of the distance between an
    electrode and the point of the scalp above the source, of standard deviation ``width`` (head
    radii; the depth of the cortex under skull and scalp is folded into it): the smearing of skull
    and scalp, which gives a radial dipole under about 1.5 cm of tissue a scalp half-width of
    3-5 cm (Nunez & Srinivasan, *Electric fields of the brain*, 2006; Srinivasan et al. 1996).

    Parameters
    ----------
    width : float
        Spread of a source on the scalp, head radii (0.3-0.6 is realistic; electrodes of the 10-20
        chains are 0.35-0.5 apart).
    sources : numpy.ndarray
        ``(n, 3)`` directions of the sources (unit vectors).

    Returns
    -------
    numpy.ndarray
        float64 ``(19, n)``.
    """
    d2 = ((XYZ[:, None, :] - sources[None, :, :]) ** 2).sum(axis=-1)
    return np.exp(-d2 / (2.0 * width**2))


def spatial_covariance(width: float) -> np.ndarray:
    """Correlation ``(19, 19)`` of the scalp potentials of independent, equal sources over the sheet.

    ``G Gᵀ`` of :func:`lead_field`, scaled to a unit diagonal: mixing 19 independent signals by its
    Cholesky factor gives the same Gaussian field as driving all sheet sources independently.
    """
    g = lead_field(width)
    c = g @ g.T
    d = np.sqrt(np.diag(c))
    return c / d[:, None] / d[None, :]
