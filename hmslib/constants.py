"""Data contracts shared by every module: class order, channel order, sampling rate, montage chains.

These mirror ``shared/DESIGN.md``; notebooks, tests and benchmarks rely on them staying stable.
"""

from __future__ import annotations

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

#: Double-banana chains (electrode sequences); each adjacent pair is one bipolar derivation.
CHAINS: dict[str, tuple[str, ...]] = {
    "LL": ("Fp1", "F7", "T3", "T5", "O1"),
    "LP": ("Fp1", "F3", "C3", "P3", "O1"),
    "RP": ("Fp2", "F4", "C4", "P4", "O2"),
    "RL": ("Fp2", "F8", "T4", "T6", "O2"),
}
#: Optional midline chain used by 18-channel montages.
MIDLINE_CHAIN: tuple[str, ...] = ("Fz", "Cz", "Pz")

#: Region order of the Kaggle spectrogram parquet columns (``LL_0.59`` ... ``RP_19.92``).
SPEC_REGIONS: tuple[str, ...] = ("LL", "RL", "LP", "RP")
#: Number of frequency bins per region in a Kaggle spectrogram.
SPEC_N_FREQS: int = 100
#: Seconds between Kaggle spectrogram columns (time = 1, 3, 5, ... s).
SPEC_STEP_SECONDS: float = 2.0

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
