"""benchmarks/bench_ablation.py --smoke: one switch against the base, resumable, paired intervals.

The paired difference is checked against the two runs' OOF files with scipy.special.rel_entr; the
interval against an explicit resampling of patients.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy.special import rel_entr  # noqa: E402

from hmslib.constants import PRED_COLUMNS, VOTE_COLUMNS  # noqa: E402

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ablation.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_ablation", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_bench()


def _row_kl(df: pd.DataFrame) -> np.ndarray:
    votes = df[list(VOTE_COLUMNS)].to_numpy(float)
    y = votes / votes.sum(axis=1, keepdims=True)
    return rel_entr(y, np.clip(df[list(PRED_COLUMNS)].to_numpy(float), 1e-15, 1 - 1e-15)).sum(axis=1)


def test_every_switch_is_a_valid_recipe_change(bench, tmp_path):
    from hmslib.config import training_config

    args = bench.parse_args(["--work", str(tmp_path)])
    assert len(args.switches) == len(bench.SWITCHES) - 1 and args.seeds == [0, 1]
    for name, switch in bench.SWITCHES.items():
        assert switch.reference in bench.SWITCHES and bench.SWITCHES[switch.reference].reference == "base"
        config = training_config(
            bench.BASE_PROFILE, model=bench.BASE_MODEL, data_dir=tmp_path, out_dir=tmp_path,
            overrides={**bench._size_overrides(args, 0), **switch.overrides},
        )  # fmt: skip
        base = training_config(
            bench.BASE_PROFILE, model=bench.BASE_MODEL, data_dir=tmp_path, out_dir=tmp_path,
            overrides=bench._size_overrides(args, 0),
        )  # fmt: skip
        changed = config.recipe.to_dict() != base.recipe.to_dict()
        assert changed == bool(switch.overrides), name  # each trained switch changes the recipe
    smoke = bench.parse_args(["--smoke", "--work", str(tmp_path)])
    assert smoke.results == str(tmp_path / "smoke")  # never the committed table
    assert smoke.switches == ["label_smoothing"] and smoke.seeds == [0]
    with pytest.raises(ValueError, match="unknown switch"):
        bench.parse_args(["--switches", "nonsense"])


def test_smoke_run_is_paired_resumable_and_plotted(bench, tmp_path, monkeypatch):
    argv = ["--smoke", "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results")]
    summary = bench.main(argv)
    results = tmp_path / "results"
    runs = pd.read_csv(results / "ablation.csv")
    assert runs[["switch", "seed"]].values.tolist() == [["base", 0], ["label_smoothing", 0]]
    assert (results / "ablation.png").stat().st_size > 0
    assert summary["switch"].tolist() == ["label_smoothing"]

    # the paired difference, from the OOF files, independently
    args = bench.parse_args(argv)
    base = pd.read_parquet(bench._oof_paths(args, "base", 0)[0]).set_index("label_id")
    other = pd.read_parquet(bench._oof_paths(args, "label_smoothing", 0)[0]).set_index("label_id")
    other = other.loc[base.index]
    many = (base[list(VOTE_COLUMNS)].sum(axis=1) >= 10).to_numpy()
    diff = (_row_kl(other) - _row_kl(base))[many]
    row = runs.set_index("switch").loc["label_smoothing"]
    assert row["diff10"] == pytest.approx(diff.mean(), rel=1e-9)
    assert row["kl10"] == pytest.approx(_row_kl(other)[many].mean(), rel=1e-9)
    assert row["diff10_lo"] <= row["diff10"] <= row["diff10_hi"]
    # the interval resamples patients: compare with an explicit patient resampling
    patients = base["patient_id"].to_numpy()[many]
    rng = np.random.default_rng(0)
    unique = np.unique(patients)
    means = []
    for _ in range(2000):
        drawn = rng.choice(unique, size=len(unique))
        means.append(np.concatenate([diff[patients == g] for g in drawn]).mean())
    lo, hi = np.percentile(means, [2.5, 97.5])
    spread = max(hi - lo, 1e-6)
    assert row["diff10_lo"] == pytest.approx(lo, abs=0.25 * spread)
    assert row["diff10_hi"] == pytest.approx(hi, abs=0.25 * spread)

    # a rerun trains nothing and appends nothing
    def refuse(*_, **__):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(bench, "_train", refuse)
    bench.main(argv)
    pd.testing.assert_frame_equal(pd.read_csv(results / "ablation.csv"), runs)

    # rows of another setup (other sizes or generator version) stay in the file, apart
    from hmslib.synthetic import GENERATOR_VERSION

    assert bench.setup_name(args).startswith(f"g{GENERATOR_VERSION}-small-p6-")
    foreign = runs.assign(setup="g0-small-pall-f4of4-e6+2-b32-mall", kl10=9.0)
    pd.concat([foreign, runs]).to_csv(results / "ablation.csv", index=False)

    # hemisphere-swap TTA: the base model's windows predicted again with their mirror image
    bench.main([*argv, "--switches", "hemisphere_tta"])
    table = pd.read_csv(results / "ablation.csv")
    pd.testing.assert_frame_equal(table[table["setup"] == foreign["setup"].iloc[0]], foreign)
    runs = table[table["setup"] == bench.setup_name(args)].set_index("switch")
    assert runs.index.tolist() == ["base", "label_smoothing", "hemisphere_tta"]
    tta = pd.read_parquet(bench._oof_paths(args, "hemisphere_tta", 0)[0]).set_index("label_id")
    tta = tta.loc[base.index]
    assert runs.at["hemisphere_tta", "epochs_run"] == 0
    assert runs.at["hemisphere_tta", "diff10"] == pytest.approx(
        (_row_kl(tta) - _row_kl(base))[many].mean(), rel=1e-9
    )
    assert not np.allclose(tta[list(PRED_COLUMNS)], base[list(PRED_COLUMNS)], atol=1e-3)

    # a summary of another setup sees none of these runs and leaves this one's files alone
    written = (results / "ablation_summary.csv").read_bytes()
    assert bench.main([*argv, "--preset", "demo", "--summary-only"]).empty
    assert (results / "ablation_summary.csv").read_bytes() == written
    # the summary rows of other setups stay in the file when this setup's are written again
    own = pd.read_csv(results / "ablation_summary.csv")
    foreign_summary = own.assign(setup=foreign["setup"].iloc[0], diff=9.0)
    pd.concat([foreign_summary, own]).to_csv(results / "ablation_summary.csv", index=False)
    bench.main([*argv, "--summary-only"])
    both = pd.read_csv(results / "ablation_summary.csv")
    pd.testing.assert_frame_equal(
        both[both["setup"] == foreign["setup"].iloc[0]].reset_index(drop=True), foreign_summary
    )
    pd.testing.assert_frame_equal(
        both[both["setup"] == bench.setup_name(args)].reset_index(drop=True), own
    )
    own.to_csv(results / "ablation_summary.csv", index=False)

    # a fresh checkout (OOF files gone): the earlier summary's pooled row is kept ...
    earlier = pd.read_csv(results / "ablation_summary.csv")
    earlier.loc[earlier["switch"] == "label_smoothing", ["diff", "lo", "hi"]] = (0.5, 0.25, 0.75)
    earlier.to_csv(results / "ablation_summary.csv", index=False)
    for path in bench._oof_paths(args, "label_smoothing", 0):
        path.unlink()
    kept = bench.main([*argv, "--summary-only"]).set_index("switch").loc["label_smoothing"]
    assert (kept["diff"], kept["lo"], kept["hi"], kept["verdict"]) == (0.5, 0.25, 0.75, "hurts")
    # ... and without it the per-seed rows give the difference and a (wider) interval
    (results / "ablation_summary.csv").unlink()
    fallback = bench.main([*argv, "--summary-only"]).set_index("switch").loc["label_smoothing"]
    assert (fallback["diff"], fallback["lo"], fallback["hi"]) == pytest.approx(
        (row["diff10"], row["diff10_lo"], row["diff10_hi"])
    )
