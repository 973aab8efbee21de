"""The ``hms`` command: one sub-command per pipeline step, each owned by the module that does the work.

``hms <command> --help`` shows a command's own options. Sub-commands are imported lazily so that
``hms synth`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import sys

#: command -> (module, one-line description); each module exposes ``main(argv) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("hmslib.synthetic", "write a synthetic data set in the Kaggle layout"),
    "preprocess": ("hmslib.cache", "compute a representation for every labelled window into a cache"),
    "train": ("hmslib.train", "train one (backbone, fold) and write its checkpoint and OOF"),
    "run": ("hmslib.pipeline", "run the notebooks in order (the main job)"),
    "predict": ("hmslib.inference", "predict a Kaggle-layout test folder with a trained run"),
    "bundle": ("hmslib.bundle", "write an offline Kaggle kernel bundle from a run"),
    "score-edf": ("hmslib.recording", "score a clinical EEG recording window by window"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: hms <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "hms <command> --help shows the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hms`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"hms: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
