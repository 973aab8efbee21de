"""hmslib._checks: the one shape of every validation message, and atomic writes.

Messages are compared with strings written out here by hand, so a change of shape is caught; the
vote checks are also exercised through :func:`hmslib.io.read_train_csv`, whose messages must name
train.csv, the CSV line and the column.
"""

from __future__ import annotations

import errno
import os
import re

import numpy as np
import pandas as pd
import pytest

from hmslib import _checks, io
from hmslib._checks import atomic_path, check_number, check_option, check_votes
from hmslib.constants import CLASSES, TRAIN_COLUMNS, VOTE_COLUMNS

# ------------------------------------------------------------------------------------ check_option


def test_check_option_accepts_allowed_values():
    assert check_option("montage", "average", ("double_banana", "average")) is None
    assert check_option("split", "test", {"train", "test"}) is None


def test_check_option_message_shape_and_close_names():
    allowed = ["double_banana", "double_banana_18", "average", "referential"]
    with pytest.raises(ValueError) as err:
        check_option("montage", "double_banan", allowed)
    assert str(err.value) == (
        "unknown montage 'double_banan'; expected one of ['double_banana', 'double_banana_18', "
        "'average', 'referential'] (close: ['double_banana', 'double_banana_18'])"
    )


def test_check_option_without_close_names_has_no_hint():
    with pytest.raises(ValueError) as err:
        check_option("training unit", "patient", ("group", "eeg"))
    assert str(err.value) == "unknown training unit 'patient'; expected one of ['group', 'eeg']"
    assert "close" not in str(err.value)


def test_check_option_close_names_are_the_closest_and_at_most_four():
    allowed = [f"model{i}" for i in range(10)] + ["other"]
    with pytest.raises(ValueError, match=r"\(close: \[(.*)\]\)$") as err:
        check_option("model", "model", allowed)
    close = re.search(r"\(close: \[(.*)\]\)$", str(err.value)).group(1).split(", ")
    assert len(close) == 4 and all(name.startswith("'model") for name in close)
    assert "'other'" not in close


def test_check_option_non_string_values():
    with pytest.raises(ValueError, match=r"^unknown stride 3; expected one of \[1, 2\]"):
        check_option("stride", 3, (1, 2))


# ------------------------------------------------------------------------------------ check_number


@pytest.mark.parametrize(
    ("kwargs", "value"),
    [
        ({"low": 1}, 1),
        ({"low": 1}, 10**9),
        ({"low": 0, "low_open": True}, 1e-12),
        ({"high": 1}, -5.0),
        ({"low": 0, "high": 1}, 0.0),
        ({"low": 0, "high": 1}, 1.0),
        ({"low": 0, "high": 1, "low_open": True}, 1.0),
        ({"low": 1, "integer": True}, np.int64(3)),
        ({}, np.float32(2.5)),
    ],
)
def test_check_number_accepts_values_in_range(kwargs, value):
    assert check_number("x", value, **kwargs) is None


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({"low": 1}, 0, "Recipe.n_folds must be >= 1, got 0"),
        ({"low": 0, "low_open": True}, 0.0, "Recipe.n_folds must be > 0, got 0.0"),
        ({"low": 0, "low_open": True}, -1e-3, "Recipe.n_folds must be > 0, got -0.001"),
        ({"high": 1}, 1.5, "Recipe.n_folds must be <= 1, got 1.5"),
        ({"low": 0, "high": 1}, 2, "Recipe.n_folds must be in [0, 1], got 2"),
        ({"low": 0, "high": 1}, -0.5, "Recipe.n_folds must be in [0, 1], got -0.5"),
        ({"low": 0, "high": 1, "low_open": True}, 0, "Recipe.n_folds must be in (0, 1], got 0"),
        ({"low": 0.5, "high": 2.5}, 3, "Recipe.n_folds must be in [0.5, 2.5], got 3"),
        ({"low": 1, "integer": True}, 2.5, "Recipe.n_folds must be an integer, got 2.5"),
        ({"low": 1, "integer": True}, 3.0, "Recipe.n_folds must be an integer, got 3.0"),
        ({"integer": True}, True, "Recipe.n_folds must be an integer, got True"),
        ({}, True, "Recipe.n_folds must be a finite number, got True"),
        ({"low": 0}, float("nan"), "Recipe.n_folds must be a finite number, got nan"),
        ({"high": 1}, float("-inf"), "Recipe.n_folds must be a finite number, got -inf"),
        ({"low": 0}, "3", "Recipe.n_folds must be a finite number, got '3'"),
        ({"low": 0}, None, "Recipe.n_folds must be a finite number, got None"),
    ],
)
def test_check_number_messages(kwargs, value, message):
    with pytest.raises(ValueError) as err:
        check_number("Recipe.n_folds", value, **kwargs)
    assert str(err.value) == message


# ------------------------------------------------------------------------------------- check_votes


def _votes(n: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    votes = rng.integers(0, 5, size=(n, len(CLASSES))).astype(float)
    votes[:, 0] += 1  # every row has a vote
    return votes


def test_check_votes_returns_float64_copy_of_valid_votes():
    votes = _votes().astype(np.int64)
    out = check_votes(votes, what="table", integer=True)
    assert out.dtype == np.float64 and out.shape == votes.shape
    np.testing.assert_array_equal(out, votes)
    shares = votes / votes.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(check_votes(shares, what="table"), shares)


def test_check_votes_negative_names_row_and_column():
    votes = _votes()
    votes[2, 3] = -1
    with pytest.raises(ValueError) as err:
        check_votes(votes, what="oof.parquet")
    assert str(err.value) == (
        "oof.parquet: negative votes (1 cells, e.g. row 2 lrda_vote=-1); votes must be finite and "
        "non-negative"
    )


def test_check_votes_nan_and_infinite():
    votes = _votes()
    votes[1, 0] = np.nan
    votes[3, 5] = np.inf
    with pytest.raises(ValueError) as err:
        check_votes(votes, what="table")
    assert str(err.value).startswith(
        "table: missing or infinite votes (2 cells, e.g. row 1 seizure_vote=nan, row 3 "
        "other_vote=inf)"
    )


def test_check_votes_non_integer_only_with_integer():
    votes = _votes()
    votes[3, 1] = 2.5
    check_votes(votes, what="table")  # shares are fine without integer=True
    with pytest.raises(ValueError) as err:
        check_votes(votes, what="train.csv", integer=True, row_names=[10, 11, 12, 13],
                    row_label="line")  # fmt: skip
    assert str(err.value) == (
        "train.csv: non-integer votes (1 cells, e.g. line 13 lpd_vote=2.5); votes must be "
        "non-negative whole numbers"
    )


def test_check_votes_names_at_most_five_cells():
    votes = np.full((8, 6), 0.5)
    with pytest.raises(ValueError, match=r"\(48 cells, e\.g\. (row \d \w+_vote=0\.5(, )?){5}\)"):
        check_votes(votes, what="t", integer=True)


def test_check_votes_shape_and_empty_rows():
    with pytest.raises(ValueError, match=r"^t: expected votes of shape \(n, 6\), got \(3, 5\)$"):
        check_votes(np.ones((3, 5)), what="t")
    with pytest.raises(ValueError, match=r"^t: expected votes of shape \(n, 6\), got \(6,\)$"):
        check_votes(np.ones(6), what="t")
    votes = _votes()
    votes[[0, 2]] = 0
    with pytest.raises(ValueError, match=r"^t: rows \[0, 2\] have no votes"):
        check_votes(votes, what="t")


# ------------------------------------------------------------------------------------ atomic writes


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_on_failure_and_replaces_it_on_success(tmp_path):
    target = tmp_path / "sub" / "out.json"
    _checks.write_json_atomic({"a": 1}, target)
    assert target.read_text() == '{\n  "a": 1\n}\n'
    with pytest.raises(KeyError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyError("interrupted")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_atomic_path_names_the_file_on_a_full_disk(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    target = tmp_path / "table.csv"
    with pytest.raises(OSError, match=r"table\.csv: not enough disk space to write it") as err:
        _checks.write_csv_atomic(pd.DataFrame({"a": [1, 2]}), target)
    assert err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_check_free_space(tmp_path):
    _checks.check_free_space(tmp_path / "not" / "yet" / "there.bin", 1)
    with pytest.raises(OSError, match=r"there\.bin: not enough disk space \(.* MiB needed"):
        _checks.check_free_space(tmp_path / "there.bin", 2**62)


# ------------------------------------------------------------------- votes of train.csv (hmslib.io)


def _write_train_csv(folder, votes: list[list[str]]) -> None:
    """A train.csv with one row per vote list (cells as written, "" = empty)."""
    lines = [",".join(TRAIN_COLUMNS)]
    for i, row in enumerate(votes):
        ids = [str(100 + i), "0", "0.0", str(200 + i), "0", "0.0", str(300 + i), "7", "Seizure"]
        lines.append(",".join(ids + row))
    (folder / "train.csv").write_text("\n".join(lines) + "\n")


def test_read_train_csv_reads_whole_votes_as_integers(tmp_path):
    _write_train_csv(tmp_path, [["3", "0", "0", "0", "0", "1"], ["0", "2", "0", "0", "0", "0"]])
    df = io.read_train_csv(tmp_path)
    assert df[list(VOTE_COLUMNS)].to_numpy().tolist() == [[3, 0, 0, 0, 0, 1], [0, 2, 0, 0, 0, 0]]
    assert all(pd.api.types.is_integer_dtype(df[c]) for c in VOTE_COLUMNS)


def test_read_train_csv_refuses_non_integer_votes(tmp_path):
    rows = [["3", "0", "0", "0", "0", "0"]] * 4
    rows[3] = ["2.5", "0", "0", "0", "0", "1"]  # CSV line 5 (the header is line 1)
    _write_train_csv(tmp_path, rows)
    path = re.escape(str(tmp_path / "train.csv"))
    with pytest.raises(ValueError, match=rf"^{path}: non-integer votes \(1 cells, e\.g\. line 5 "
                       r"seizure_vote=2\.5\); votes must be non-negative whole numbers$"):  # fmt: skip
        io.read_train_csv(tmp_path)


def test_read_train_csv_refuses_empty_vote_cells(tmp_path):
    rows = [["3", "0", "0", "0", "0", "0"]] * 3
    rows[1] = ["3", "", "0", "0", "0", "0"]  # CSV line 3
    _write_train_csv(tmp_path, rows)
    path = re.escape(str(tmp_path / "train.csv"))
    with pytest.raises(ValueError, match=rf"^{path}: missing or infinite votes \(1 cells, e\.g\. "
                       r"line 3 lpd_vote=nan\)"):  # fmt: skip
        io.read_train_csv(tmp_path)


def test_read_train_csv_refuses_negative_votes_and_rows_without_votes(tmp_path):
    _write_train_csv(tmp_path, [["3", "0", "0", "0", "0", "0"], ["0", "0", "-1", "0", "0", "2"]])
    with pytest.raises(ValueError, match=r"train\.csv: negative votes .*line 3 gpd_vote=-1"):
        io.read_train_csv(tmp_path)
    _write_train_csv(tmp_path, [["3", "0", "0", "0", "0", "0"], ["0", "0", "0", "0", "0", "0"]])
    with pytest.raises(ValueError, match=r"train\.csv: lines \[3\] have no votes"):
        io.read_train_csv(tmp_path)


def test_read_train_csv_header_without_rows(tmp_path):
    _write_train_csv(tmp_path, [])
    with pytest.raises(ValueError, match=r"train\.csv: train\.csv has a header but no rows$"):
        io.read_train_csv(tmp_path)
