"""hmslib.cli: one ``hms`` command, one error policy.

Every error is one line ``hms <command>: error: <message>`` on stderr; the exit status is 2 for bad
input (the user can fix it) and 1 for a failure while working. ``hms --help`` must not import torch.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import pytest

from hmslib import cli
from hmslib.constants import TRAIN_COLUMNS


def _hms(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``hms argv`` in-process: (exit status, stdout, stderr), argparse's SystemExit included."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str, command: str) -> str:
    """The single stderr line of a failed command, checked to have the policy's shape."""
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"hms {command}: error: "), lines[0]
    return lines[0]


@pytest.fixture
def data_dir(tmp_path):
    """A Kaggle-layout folder whose train.csv has the header and no rows."""
    data = tmp_path / "data"
    for folder in ("train_eegs", "train_spectrograms"):
        (data / folder).mkdir(parents=True)
    (data / "train.csv").write_text(",".join(TRAIN_COLUMNS) + "\n")
    return data


def test_no_command_prints_usage(capsys):
    code, out, err = _hms([], capsys)
    assert code == 0 and err == ""
    assert out.startswith("usage: hms <command>")
    for name in cli.COMMANDS:
        assert f"  {name} " in out


def test_unknown_command(capsys):
    code, out, err = _hms(["trian", "data"], capsys)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == "hms: error: unknown command 'trian'"
    assert sum("error" in line for line in lines) == 1
    # the usage that follows names every command
    assert all(any(line.startswith(f"  {name} ") for line in lines) for name in cli.COMMANDS)


def test_train_bad_fold_is_one_argparse_line(capsys, data_dir):
    code, out, err = _hms(["train", str(data_dir), "--fold", "x"], capsys)
    assert code == 2 and out == ""
    line = _error_line(err, "train")
    assert line == (
        "hms train: error: argument --fold: expected a fold number or 'all', got 'x' "
        "(see hms train --help)"
    )
    code, _, err = _hms(["train", str(data_dir), "--fold", "-1"], capsys)
    assert code == 2 and "a fold number is >= 0, got -1" in _error_line(err, "train")


def test_train_unknown_backbone_lists_close_names(capsys, tmp_path, data_dir):
    run = tmp_path / "run"
    argv = ["train", str(data_dir), "--fold", "0", "--backbone", "wavenet1", "--out", str(run)]
    code, out, err = _hms(argv, capsys)
    assert code == 2 and out == ""
    line = _error_line(err, "train")
    assert line.startswith("hms train: error: unknown backbone 'wavenet1'; close names: [")
    close = line.split("close names: [", 1)[1].rstrip("]").split(", ")
    assert "'wavenet1d'" in close  # the 1-D model is among them, next to timm's names
    assert len(close) > 1
    assert not run.exists()


def test_train_csv_without_rows_names_the_file(capsys, tmp_path, data_dir):
    run = tmp_path / "run"
    code, out, err = _hms(
        ["train", str(data_dir), "--fold", "0", "--out", str(run), "--quiet"], capsys
    )
    assert code == 2
    line = _error_line(err, "train")
    assert f"{data_dir / 'train.csv'}" in line
    assert line.endswith("train.csv has a header but no rows")


def test_synth_bad_preset(capsys, tmp_path):
    out_dir = tmp_path / "synth"
    code, out, err = _hms(["synth", str(out_dir), "--preset", "huge"], capsys)
    assert code == 2 and out == ""
    line = _error_line(err, "synth")
    assert "argument --preset: invalid choice: 'huge'" in line
    assert "'bench'" in line and "'demo'" in line
    assert not out_dir.exists()


def test_synth_bad_values_are_exit_2(capsys, tmp_path):
    code, _, err = _hms(["synth", str(tmp_path / "a"), "--seed", "-1", "--quiet"], capsys)
    assert code == 2
    assert "seed must be a non-negative integer, got -1" in _error_line(err, "synth")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.md").write_text("keep")
    code, _, err = _hms(["synth", str(busy), "--patients", "1", "--quiet"], capsys)
    assert code == 2 and "output folder is not empty" in _error_line(err, "synth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_failure_while_working_is_exit_1_on_one_line(capsys, tmp_path, monkeypatch):
    import hmslib.synthetic

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "synth/train.csv: not enough disk space\n  (3 MiB free)")

    monkeypatch.setattr(hmslib.synthetic, "generate", full_disk)
    code, out, err = _hms(["synth", str(tmp_path / "d"), "--quiet"], capsys)
    assert code == 1 and out == ""
    line = _error_line(err, "synth")
    assert (
        line == "hms synth: error: [Errno 28] synth/train.csv: not enough disk space (3 MiB free)"
    )

    def broken(*args, **kwargs):
        raise KeyError("no such key 'x'")

    monkeypatch.setattr(hmslib.synthetic, "generate", broken)
    code, _, err = _hms(["synth", str(tmp_path / "d"), "--quiet"], capsys)
    assert code == 2  # KeyError is bad input; its message is not re-quoted
    assert _error_line(err, "synth") == "hms synth: error: no such key 'x'"


def test_console_entry_point_exit_status(tmp_path):
    """The real process: ``python -m hmslib.cli`` exits with the policy's status."""
    bad = subprocess.run(
        [sys.executable, "-m", "hmslib.cli", "synth", str(tmp_path / "x"), "--preset", "huge"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == ""
    _error_line(bad.stderr, "synth")
    unknown = subprocess.run(
        [sys.executable, "-m", "hmslib.cli", "nope"], capture_output=True, text=True, timeout=300
    )
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines()[0] == "hms: error: unknown command 'nope'"


def test_help_does_not_import_torch():
    code = (
        "import json, sys\n"
        "from hmslib import cli\n"
        "status = cli.main(['--help'])\n"
        "print(json.dumps({'status': status, 'torch': sorted(m for m in sys.modules\n"
        "                  if m == 'torch' or m.startswith('torch.'))}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    *help_lines, last = done.stdout.splitlines()
    result = json.loads(last)
    assert result == {"status": 0, "torch": []}
    text = "\n".join(help_lines)
    assert text.startswith("usage: hms <command>") and "synth" in text and "score-edf" in text


def test_synth_help_lists_the_presets(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["synth", "--help"])
    assert exit_.value.code == 0
    assert "--preset {bench,demo,small}" in capsys.readouterr().out
