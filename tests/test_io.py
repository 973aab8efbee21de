"""hmslib.io against the real competition files and every bad-input path."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hmslib import io
from hmslib.constants import EEG_CHANNELS, SPEC_REGIONS


def test_eeg_window_equals_parquet_rows(hms_samples):
    eeg = io.load_eeg(hms_samples, 1628180742)
    assert eeg.dtype == np.float32 and eeg.shape == (20, 18000)
    window = io.eeg_window(eeg, 24.0)
    assert window.shape == (20, 10000)
    table = pq.read_table(hms_samples / "train_eegs" / "1628180742.parquet").to_pandas()
    for i, name in enumerate(EEG_CHANNELS):
        np.testing.assert_array_equal(window[i], table[name].to_numpy()[4800:14800])


def test_load_eeg_window_matches_manual_cut(hms_samples):
    window = io.load_eeg_window(hms_samples, 1628180742, 40.0)
    table = pd.read_parquet(hms_samples / "train_eegs" / "1628180742.parquet")
    np.testing.assert_array_equal(window, table.to_numpy(np.float32)[8000:18000].T)


def test_test_eeg_is_50_seconds(hms_samples):
    eeg = io.load_eeg(hms_samples, 3911565283, split="test")
    assert eeg.shape == (20, 10000)


def test_spectrogram_window_has_file_values(hms_samples):
    spec = io.load_spectrogram(hms_samples, 353733)
    assert spec.dtype == np.float32 and spec.shape == (4, 100, 320)
    window = io.spectrogram_window(spec, 0.0)
    assert window.shape == (4, 100, 300)
    table = pd.read_parquet(hms_samples / "train_spectrograms" / "353733.parquet")
    rows = table[(table.time >= 0) & (table.time < 600)]
    assert len(rows) == 300
    for r, region in enumerate(SPEC_REGIONS):
        cols = [c for c in table.columns if c.startswith(f"{region}_")]
        np.testing.assert_array_equal(window[r], rows[cols].to_numpy(np.float32).T)


@pytest.mark.parametrize("offset", [0.0, 6.0, 7.0, 38.0])
def test_spectrogram_window_follows_time_column(hms_samples, offset):
    spec = io.load_spectrogram(hms_samples, 353733)
    table = pd.read_parquet(hms_samples / "train_spectrograms" / "353733.parquet")
    rows = table[(table.time >= offset) & (table.time < offset + 600)]
    window = io.spectrogram_window(spec, offset)
    np.testing.assert_array_equal(window[0], rows[[c for c in table.columns if c.startswith("LL_")]].to_numpy(np.float32).T)



def test_eeg_windows_stack_the_single_windows(hms_samples):
    eeg = io.load_eeg(hms_samples, 1628180742)
    offsets = [0.0, 6.0, 24.5, 40.0]
    windows = io.eeg_windows(eeg, offsets)
    assert windows.shape == (4, 20, 10000) and windows.dtype == np.float32
    for window, offset in zip(windows, offsets, strict=True):
        start = int(round(offset * 200))
        np.testing.assert_array_equal(window, eeg[:, start : start + 10000])
    windows[0, 0, 0] += 1  # a copy, not a view of the recording
    assert eeg[0, 0] != windows[0, 0, 0]


def test_eeg_windows_clip_or_refuse_windows_outside(hms_samples):
    eeg = io.load_eeg(hms_samples, 1628180742)
    clipped = io.eeg_windows(eeg, [-3.0, 45.0], clip=True)
    np.testing.assert_array_equal(clipped[0], eeg[:, :10000])
    np.testing.assert_array_equal(clipped[1], eeg[:, 8000:18000])
    with pytest.raises(ValueError, match=r"1628180742\.parquet: window \[9000, 19000\) does not fit.*18000"):
        io.eeg_windows(eeg, [0.0, 45.0], source="1628180742.parquet")
    with pytest.raises(ValueError, match=r"EEG: window \[-200, 9800\)"):
        io.eeg_windows(eeg, [-1.0])


def test_spectrogram_windows_stack_the_single_windows(hms_samples):
    spec = io.load_spectrogram(hms_samples, 353733)
    offsets = [0.0, 6.0, 7.0, 38.0]
    windows = io.spectrogram_windows(spec, offsets)
    assert windows.shape == (4, 4, 100, 300)
    for window, offset in zip(windows, offsets, strict=True):
        np.testing.assert_array_equal(window, io.spectrogram_window(spec, offset))
    with pytest.raises(ValueError, match=r"353733: window .* does not fit"):
        io.spectrogram_windows(spec, [0.0, 100.0], source="353733")

def test_test_spectrogram_with_int_time(hms_samples):
    spec = io.load_spectrogram(hms_samples, 853520, split="test")
    assert spec.shape == (4, 100, 300)


def test_read_train_csv(hms_samples):
    df = io.read_train_csv(hms_samples)
    assert len(df) == 9 and df.eeg_id.unique().tolist() == [1628180742]


# ---------------------------------------------------------------------------------- bad input


@pytest.fixture
def data_copy(tmp_path, hms_samples):
    root = tmp_path / "data"
    shutil.copytree(hms_samples, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def test_missing_eeg_names_file_and_id(data_copy):
    with pytest.raises(FileNotFoundError, match=r"train_eegs/123\.parquet.*EEG 123"):
        io.load_eeg(data_copy, 123)


def test_missing_spectrogram_names_id(data_copy):
    with pytest.raises(FileNotFoundError, match=r"spectrogram 999.*not found"):
        io.load_spectrogram(data_copy, 999)


def test_renamed_eeg_column(data_copy):
    path = data_copy / "train_eegs" / "1628180742.parquet"
    pd.read_parquet(path).rename(columns={"Cz": "CZ"}).to_parquet(path)
    with pytest.raises(ValueError, match=r"1628180742\.parquet.*missing columns \['Cz'\].*unexpected columns \['CZ'\]"):
        io.load_eeg(data_copy, 1628180742)


def test_wrong_dtype_eeg(data_copy):
    path = data_copy / "train_eegs" / "1628180742.parquet"
    df = pd.read_parquet(path)
    df["Fp1"] = df["Fp1"].astype(str)
    df.to_parquet(path)
    with pytest.raises(ValueError, match=r"1628180742\.parquet.*\['Fp1'\] must be numeric"):
        io.load_eeg(data_copy, 1628180742)


def test_empty_file(data_copy):
    path = data_copy / "train_eegs" / "1628180742.parquet"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"1628180742\.parquet.*empty"):
        io.load_eeg(data_copy, 1628180742)


def test_not_parquet(data_copy):
    path = data_copy / "train_eegs" / "1628180742.parquet"
    path.write_text("eeg,values\n1,2\n")
    with pytest.raises(ValueError, match=r"1628180742\.parquet.*not a readable parquet"):
        io.load_eeg(data_copy, 1628180742)


def test_zero_row_parquet(data_copy):
    path = data_copy / "train_eegs" / "1628180742.parquet"
    pd.read_parquet(path).iloc[:0].to_parquet(path)
    with pytest.raises(ValueError, match=r"1628180742\.parquet.*no rows"):
        io.load_eeg(data_copy, 1628180742)


def test_window_past_end_raises_with_source(data_copy):
    with pytest.raises(ValueError, match=r"1628180742\.parquet.*past the end.*18000"):
        io.load_eeg_window(data_copy, 1628180742, 41.0)


def test_padding_only_on_request_and_warned(hms_samples):
    eeg = io.load_eeg(hms_samples, 1628180742)
    with pytest.warns(io.PaddingWarning, match="padded 200 of 10000"):
        window = io.eeg_window(eeg, 41.0, pad=True)
    assert window.shape == (20, 10000)
    np.testing.assert_array_equal(window[:, :9800], eeg[:, 8200:])
    assert np.isnan(window[:, 9800:]).all()


def test_spectrogram_window_past_end(hms_samples):
    spec = io.load_spectrogram(hms_samples, 353733)
    with pytest.raises(ValueError, match="past the end"):
        io.spectrogram_window(spec, 100.0, source="353733")


def test_spectrogram_region_columns_checked(data_copy):
    path = data_copy / "train_spectrograms" / "353733.parquet"
    df = pd.read_parquet(path)
    df.drop(columns=[c for c in df.columns if c.startswith("RP_")][:3]).to_parquet(path)
    with pytest.raises(ValueError, match=r"353733.*97 columns for region RP"):
        io.load_spectrogram(data_copy, 353733)


def test_spectrogram_time_checked(data_copy):
    path = data_copy / "train_spectrograms" / "353733.parquet"
    df = pd.read_parquet(path)
    df.loc[5, "time"] = 100
    df.to_parquet(path)
    with pytest.raises(ValueError, match=r"353733.*row 5 has 100"):
        io.load_spectrogram(data_copy, 353733)


def test_train_csv_missing_column(data_copy):
    df = pd.read_csv(data_copy / "train.csv").rename(columns={"lpd_vote": "LPD_vote"})
    df.to_csv(data_copy / "train.csv", index=False)
    with pytest.raises(ValueError, match=r"train\.csv.*missing columns \['lpd_vote'\]"):
        io.read_train_csv(data_copy)


def test_train_csv_absent_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train\.csv"):
        io.read_train_csv(tmp_path)
    (tmp_path / "train.csv").write_text("")
    with pytest.raises(ValueError, match=r"train\.csv.*empty"):
        io.read_train_csv(tmp_path)


def test_check_data_dir_lists_missing(tmp_path):
    (tmp_path / "train.csv").write_text("x\n")
    with pytest.raises(FileNotFoundError, match=r"missing \['train_eegs', 'train_spectrograms'\]"):
        io.check_data_dir(tmp_path)

