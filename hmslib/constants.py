"""Data contracts shared by every module: classes, channels, window lengths, chains, column tuples.

Every fact of the competition's data and of the project's file formats is written here once; the
other modules import it. These mirror ``shared/DESIGN.md``; notebooks, tests and benchmarks rely on
them staying stable.
"""

from __future__ import annotations

import math

#: The six targets, in the order of the ``*_vote`` columns and of every probability array.
CLASSES: tuple[str, ...] = ("seizure", "lpd", "gpd", "lrda", "grda", "other")

#: Vote columns of train.csv, in ``CLASSES`` order.
VOTE_COLUMNS: tuple[str, ...] = tuple(f"{c}_vote" for c in CLASSES)

#: Prediction columns of OOF and test-prediction files, in ``CLASSES`` order.
PRED_COLUMNS: tuple[str, ...] = tuple(f"pred_{c}" for c in CLASSES)

#: ``expert_consensus`` strings of train.csv, in ``CLASSES`` order.
CONSENSUS_NAMES: tuple[str, ...] = ("Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other")

#: The 20 EEG parquet columns in file order (19 scalp leads of the 10-20 system + EKG).
EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz",
    "Pz", "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2", "EKG",
)  # fmt: skip

#: Scalp leads only (``EEG_CHANNELS`` without EKG).
SCALP_CHANNELS: tuple[str, ...] = EEG_CHANNELS[:19]

#: Sampling rate of the competition EEG, Hz.
SFREQ: float = 200.0

#: Length of a labelled EEG window, seconds (experts labelled its central 10 s).
EEG_WINDOW_SECONDS: float = 50.0
#: Length of a labelled Kaggle spectrogram window, seconds.
SPEC_WINDOW_SECONDS: float = 600.0
#: Central labelled part of a window, seconds.
LABEL_CENTER_SECONDS: float = 10.0
#: Samples of a labelled EEG window (50 s at 200 Hz).
EEG_WINDOW_SAMPLES: int = round(EEG_WINDOW_SECONDS * SFREQ)
#: Samples of the labelled centre of a window (10 s at 200 Hz), and where they lie in the window.
CENTER_SAMPLES: int = round(LABEL_CENTER_SECONDS * SFREQ)
CENTER_SLICE: slice = slice(
    (EEG_WINDOW_SAMPLES - CENTER_SAMPLES) // 2, (EEG_WINDOW_SAMPLES + CENTER_SAMPLES) // 2
)

#: Double-banana chains (electrode sequences); each adjacent pair is one bipolar derivation.
CHAINS: dict[str, tuple[str, ...]] = {
    "LL": ("Fp1", "F7", "T3", "T5", "O1"),
    "LP": ("Fp1", "F3", "C3", "P3", "O1"),
    "RP": ("Fp2", "F4", "C4", "P4", "O2"),
    "RL": ("Fp2", "F8", "T4", "T6", "O2"),
}
#: Chain names in the order every representation stacks them (left lateral, left parasagittal,
#: right parasagittal, right lateral).
CHAIN_NAMES: tuple[str, ...] = tuple(CHAINS)
#: Optional midline chain used by 18-channel montages.
MIDLINE_CHAIN: tuple[str, ...] = ("Fz", "Cz", "Pz")

#: Region order of the Kaggle spectrogram parquet columns (``LL_0.59`` ... ``RP_19.92``).
SPEC_REGIONS: tuple[str, ...] = ("LL", "RL", "LP", "RP")
#: Number of frequency bins per region in a Kaggle spectrogram.
SPEC_N_FREQS: int = 100
#: Seconds between Kaggle spectrogram columns (time = 1, 3, 5, ... s).
SPEC_STEP_SECONDS: float = 2.0
#: Column labels (Hz) of a Kaggle spectrogram: bins 3..102 of a 1024-point FFT at 200 Hz, rounded
#: half up to 0.01 Hz exactly as the competition's files name them ("0.59" ... "19.92").
SPEC_FREQ_LABELS: tuple[str, ...] = tuple(
    str(math.floor(k * SFREQ / 1024 * 100 + 0.5) / 100) for k in range(3, 3 + SPEC_N_FREQS)
)
#: The 400 value columns of a Kaggle spectrogram parquet file, after ``time``.
SPEC_COLUMNS: tuple[str, ...] = tuple(f"{r}_{f}" for r in SPEC_REGIONS for f in SPEC_FREQ_LABELS)
#: Kaggle spectrogram columns of a labelled window (600 s, one column per 2 s).
SPEC_WINDOW_COLUMNS: int = round(SPEC_WINDOW_SECONDS / SPEC_STEP_SECONDS)

#: Left/right mirror of the scalp leads (midline and EKG map to themselves).
LEFT_RIGHT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Fp1", "Fp2"), ("F3", "F4"), ("C3", "C4"), ("P3", "P4"), ("F7", "F8"),
    ("T3", "T4"), ("T5", "T6"), ("O1", "O2"),
)  # fmt: skip

#: Columns of train.csv, in file order.
TRAIN_COLUMNS: tuple[str, ...] = (
    "eeg_id", "eeg_sub_id", "eeg_label_offset_seconds", "spectrogram_id", "spectrogram_sub_id",
    "spectrogram_label_offset_seconds", "label_id", "patient_id", "expert_consensus", *VOTE_COLUMNS,
)  # fmt: skip
#: Columns of test.csv, in file order.
TEST_COLUMNS: tuple[str, ...] = ("spectrogram_id", "eeg_id", "patient_id")

#: Votes from which a window counts as high-agreement (the expert pool the test set resembles);
#: the top solutions trained last on, and validated on, such windows.
HIGH_AGREEMENT_VOTES: int = 10

#: Target columns of a training-units table, in ``CLASSES`` order.
TARGET_COLUMNS: tuple[str, ...] = tuple(f"target_{c}" for c in CLASSES)
#: True class distributions of a synthetic data set's ``truth.csv``, in ``CLASSES`` order.
TRUE_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in CLASSES)

#: Identifier columns of an OOF file (``oof/<model>_fold<k>.parquet``).
OOF_ID_COLUMNS: tuple[str, ...] = ("label_id", "eeg_id", "patient_id", "fold", "total_votes")
#: Every column an OOF file must have, in file order.
OOF_COLUMNS: tuple[str, ...] = (*OOF_ID_COLUMNS, *VOTE_COLUMNS, *PRED_COLUMNS)

#: Columns of a recording's scored timeline (``timeline.csv``), in order.
TIMELINE_COLUMNS: tuple[str, ...] = (
    "start_s", "end_s", *CLASSES, "top_class", "top_prob",
    "nan_frac", "flat_leads", "filled_leads", "bad", "prior_used", "segment",
)  # fmt: skip

#: Columns of the quality sidecar of a submission (``submission_quality.csv``), in order.
QUALITY_COLUMNS: tuple[str, ...] = (
    "eeg_id", "nan_frac", "missing_leads", "flat_leads", "signal_frac", "repaired", "prior_used",
)  # fmt: skip
