"""Synthetic HMS data with known ground truth, written in the exact Kaggle layout.

:func:`generate` writes ``train.csv``, ``test.csv``, ``sample_submission.csv``, ``train_eegs/``,
``train_spectrograms/``, ``test_eegs/`` and ``test_spectrograms/`` as the competition did, plus
``truth.csv`` (the class distribution each row's votes were drawn from, the generating parameters and
the test set's expert votes) and ``synthetic.json`` (what made the folder).

The generator is split by concern:

- :mod:`~hmslib.synthetic.raters`: from a pattern's parameters to the distribution each rater pool
  votes from (experts, and a larger, noisier pool that over-calls seizures);
- :mod:`~hmslib.synthetic.patterns`: parameters, waveforms and scalp fields of the ACNS patterns;
- :mod:`~hmslib.synthetic.cohort`: patients, sessions, EEG excerpts, events, labelled windows, votes;
- :mod:`~hmslib.synthetic.render`: the signal (background, EKG, patterns, artifacts) and spectrogram;
- :mod:`~hmslib.synthetic.writer`: the files, ``truth.csv`` and :func:`bayes_floor`.

Because the true distributions are known, :func:`bayes_floor` gives the lowest KL any model can reach
on the data (the vote noise) next to the KL of the class-prior predictor: the learnable gap.
"""

from hmslib.synthetic.raters import class_distribution, class_memberships
from hmslib.synthetic.writer import (
    GENERATOR_VERSION,
    PRESETS,
    SynthPreset,
    bayes_floor,
    ensure_generated,
    generate,
    read_truth,
)

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "SynthPreset",
    "bayes_floor",
    "class_distribution",
    "class_memberships",
    "ensure_generated",
    "generate",
    "read_truth",
]
