"""hmslib: classify harmful brain activity in ICU EEG (Kaggle HMS) from notebooks and the command line."""

__version__ = "0.1.0"
