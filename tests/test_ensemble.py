"""hmslib.ensemble: blends, simplex weights vs a brute-force grid, the bias stack, nested scoring,
OOF alignment and ensemble.json.

KL references use scipy.special.rel_entr in float64, independent of hmslib.metrics.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad
from scipy.special import rel_entr

from hmslib import ensemble
from hmslib.constants import PRED_COLUMNS, VOTE_COLUMNS
from hmslib.ensemble import Ensemble


def _kl(y: np.ndarray, p: np.ndarray) -> float:
    """Mean KL of ``p`` from row-normalised ``y``, Kaggle clipping, float64."""
    y = y / y.sum(axis=1, keepdims=True)
    return float(rel_entr(y, np.clip(p, 1e-15, 1 - 1e-15)).sum(axis=1).mean())


def _grid_best(preds: np.ndarray, y: np.ndarray, step: float) -> tuple[np.ndarray, float]:
    """Brute force over the simplex on a ``step`` grid: (best weights, best KL)."""
    m = preds.shape[0]
    ticks = np.round(np.arange(0, 1 + step / 2, step), 12)
    grid = np.array([w for w in itertools.product(ticks, repeat=m - 1) if sum(w) <= 1 + 1e-9])
    grid = np.column_stack([grid, 1 - grid.sum(axis=1)])
    yn = y / y.sum(axis=1, keepdims=True)
    mixes = np.einsum("gj,jic->gic", grid, preds)
    kls = rel_entr(yn[None], np.clip(mixes, 1e-15, 1 - 1e-15)).sum(axis=2).mean(axis=1)
    return grid[kls.argmin()], float(kls.min())


def test_blend_of_two_models_hand_worked():
    p1 = np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    p2 = np.array([[0.1, 0.5, 0.1, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2, 0.0]])
    votes = np.array([[2, 2, 0, 0, 0, 0], [0, 0, 0, 0, 0, 3]])
    ens = Ensemble(("a", "b"), np.array([0.25, 0.75]), method="nelder_mead")
    mix = ensemble.blend({"b": p2, "a": p1, "unused": p1}, ens)
    # row 1: (0.25*0.5 + 0.75*0.1, 0.25*0.1 + 0.75*0.5) = (0.2, 0.4); row 2: other = 0.25
    np.testing.assert_allclose(mix[:, :2], [[0.2, 0.4], [0.15, 0.15]])
    row1 = 0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.4)
    row2 = math.log(1 / 0.25)
    fitted = ensemble.fit_ensemble(
        np.stack([p1, p2]), votes, ["a", "b"], method="equal", fit_min_votes=0
    )
    assert _kl(votes, mix) == pytest.approx((row1 + row2) / 2, rel=1e-12)
    # equal weights: row 1 (0.3, 0.3) -> 0.5 ln(0.5/0.3) * 2; row 2 other = 0.5
    assert fitted.oof_kl == pytest.approx((math.log(0.5 / 0.3) + math.log(2)) / 2, rel=1e-12)
    with pytest.raises(ValueError, match=r"needs predictions of models \['b'\]"):
        ensemble.blend({"a": p1}, ens)


@pytest.mark.parametrize("true_weights", [[0.3, 0.7], [0.2, 0.5, 0.3]])
def test_nelder_mead_recovers_an_exact_mixture(true_weights):
    rng = np.random.default_rng(len(true_weights))
    w = np.array(true_weights)
    preds = rng.dirichlet(np.full(6, 0.7), size=(len(w), 150))
    y = np.einsum("j,jic->ic", w, preds)
    grid_w, grid_kl = _grid_best(preds, y, step=0.01)
    np.testing.assert_allclose(grid_w, w, atol=1e-9)  # the reference finds the truth on its grid
    weights = ensemble.nelder_mead_weights(preds, y, seed=0)
    np.testing.assert_allclose(weights, grid_w, atol=2e-3)
    assert _kl(y, np.einsum("j,jic->ic", weights, preds)) <= grid_kl + 1e-6


def test_nelder_mead_matches_grid_search_on_sampled_votes():
    rng = np.random.default_rng(7)
    preds = rng.dirichlet(np.full(6, 0.7), size=(3, 300))
    mixture = np.einsum("j,jic->ic", [0.6, 0.1, 0.3], preds)
    votes = np.stack([rng.multinomial(8, p / p.sum()) for p in mixture])
    grid_w, grid_kl = _grid_best(preds, votes, step=0.01)
    weights = ensemble.nelder_mead_weights(preds, votes, seed=1)
    nm_kl = _kl(votes, np.einsum("j,jic->ic", weights, preds))
    assert nm_kl <= grid_kl + 1e-9
    np.testing.assert_allclose(weights, grid_w, atol=0.02)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weights_lie_on_the_simplex(seed):
    rng = np.random.default_rng(seed)
    m = 2 + seed
    preds = rng.dirichlet(np.ones(6), size=(m, 40))
    votes = rng.integers(0, 4, size=(40, 6)) + np.eye(6, dtype=int)[rng.integers(0, 6, 40)]
    for weights in (
        ensemble.nelder_mead_weights(preds, votes, seed=seed),
        ensemble.fit_stack(preds, votes)[0],
        ensemble.equal_weights(m),
    ):
        assert weights.shape == (m,)
        assert (weights >= 0).all()
        assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(ensemble.nelder_mead_weights(preds[:1], votes), [1.0])


def test_fitting_rejects_mismatched_or_empty_inputs():
    preds = np.full((2, 3, 6), 1 / 6)
    with pytest.raises(ValueError, match=r"got preds \(2, 3, 6\) and y \(4, 6\)"):
        ensemble.nelder_mead_weights(preds, np.ones((4, 6)))
    no_votes = np.ones((3, 6))
    no_votes[1] = 0
    with pytest.raises(ValueError, match="at least one vote per row"):
        ensemble.fit_stack(preds, no_votes)
    with pytest.raises(ValueError, match="method 'single' needs one model"):
        ensemble.fit_ensemble(preds, np.ones((3, 6)), ["a", "b"], method="single")


def test_stack_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    preds = rng.dirichlet(np.ones(6), size=(3, 30))
    y = rng.dirichlet(np.ones(6), size=30)
    x = rng.normal(size=2 + 6)
    error = check_grad(
        lambda p: ensemble._stack_loss(p, preds, y)[0],
        lambda p: ensemble._stack_loss(p, preds, y)[1],
        x,
    )
    assert error < 1e-6


def test_stack_bias_corrects_a_biased_model():
    rng = np.random.default_rng(4)
    truth = rng.dirichlet(np.full(6, 0.8), size=400)
    beta = np.array([1.0, -0.5, 0.0, 0.3, 0.0, -0.8])  # over-predicts seizure, under-predicts other
    biased = truth * np.exp(beta)
    biased /= biased.sum(axis=1, keepdims=True)
    other = rng.dirichlet(np.ones(6), size=400)  # a useless second model
    preds = np.stack([biased, other])
    weights, bias = ensemble.fit_stack(preds, truth)
    np.testing.assert_allclose(bias, -(beta - beta.mean()), atol=1e-3)
    np.testing.assert_allclose(weights, [1.0, 0.0], atol=1e-3)
    stacked = ensemble.apply_stack(preds, weights, bias)
    np.testing.assert_allclose(stacked.sum(axis=1), 1.0)
    nm = ensemble.nelder_mead_weights(preds, truth)
    nm_kl = _kl(truth, np.einsum("j,jic->ic", nm, preds))
    assert _kl(truth, stacked) < 1e-5 < 0.05 < nm_kl
    # on sampled votes the bias still helps, by less
    votes = np.stack([rng.multinomial(10, p) for p in truth])
    weights, bias = ensemble.fit_stack(biased, votes)
    assert _kl(votes, ensemble.apply_stack(biased[None], weights, bias)) < _kl(votes, biased) - 0.02


def test_nested_splits_are_grouped_disjoint_and_cover_every_row():
    groups = np.random.default_rng(5).integers(0, 23, 200)
    splits = ensemble.nested_splits(groups, n_outer=4, seed=3)
    assert len(splits) == 4
    scored = np.concatenate([score for _, score in splits])
    np.testing.assert_array_equal(np.sort(scored), np.arange(200))  # each row scored exactly once
    for fit, score in splits:
        assert not set(fit) & set(score)
        assert len(fit) + len(score) == 200
        assert not set(groups[fit]) & set(groups[score])
    with pytest.raises(ValueError, match=r"n_outer must be in \[2, 23\]"):
        ensemble.nested_splits(groups, n_outer=24)


def test_compare_ensembles_never_fits_on_scored_rows(monkeypatch):
    rng = np.random.default_rng(6)
    n = 120
    preds = rng.dirichlet(np.ones(6), size=(2, n))
    y = rng.dirichlet(np.ones(6), size=n)  # continuous -> every row is unique
    groups = rng.integers(0, 15, n)
    n_votes = rng.integers(1, 20, n)
    row_of = {row.tobytes(): i for i, row in enumerate(y)}
    seen: dict[str, list[set[int]]] = {"nelder_mead": [], "stack": [], "temperature": []}

    def spy(name, fit):
        def wrapped(p, target, **kwargs):
            seen[name].append({row_of[r.tobytes()] for r in target})
            return fit(p, target, **kwargs)

        return wrapped

    monkeypatch.setattr(
        ensemble, "nelder_mead_weights", spy("nelder_mead", ensemble.nelder_mead_weights)
    )
    monkeypatch.setattr(ensemble, "fit_stack", spy("stack", ensemble.fit_stack))
    monkeypatch.setattr(ensemble, "fit_temperatures", spy("temperature", ensemble.fit_temperatures))
    table = ensemble.compare_ensembles(
        preds, y, groups, n_votes=n_votes, names=["a", "b"], n_outer=3, seed=2
    )
    splits = ensemble.nested_splits(groups, n_outer=3, seed=2)
    many = set(np.flatnonzero(n_votes >= 10).tolist())
    for name, fits in seen.items():
        per_fit = 1 if name == "temperature" else 2  # a blend without and with temperatures
        assert len(fits) == 4 * per_fit  # one per outer fold + the in-sample refit
        for k, (fit, score) in enumerate(splits):
            for rows in fits[k * per_fit : (k + 1) * per_fit]:
                # fitted on the outer-train rows with >= 10 votes only
                assert rows == set(fit.tolist()) & many and not rows & set(score.tolist())
        assert all(rows == many for rows in fits[-per_fit:])
    labels = ["single:a", "single:b", "equal", "nelder_mead", "stack"]
    assert set(table.index) == {*labels, *(f"{m} + temperature" for m in labels)}
    assert table.loc[labels, "temperature"].eq(False).all()
    assert table.loc[[f"{m} + temperature" for m in labels], "temperature"].all()
    high = n_votes >= 10
    for j, name in enumerate(["a", "b"]):
        row = table.loc[f"single:{name}"]
        assert row["kl_nested"] == pytest.approx(_kl(y[high], preds[j][high]), rel=1e-12)
        assert row["kl_nested_all"] == pytest.approx(_kl(y, preds[j]), rel=1e-12)
    mean = preds.mean(axis=0)
    assert table.at["equal", "kl_in_sample"] == pytest.approx(_kl(y[high], mean[high]), rel=1e-12)
    with pytest.raises(ValueError, match="pass n_votes"):
        ensemble.compare_ensembles(preds, y, groups, n_votes=None, n_outer=3)
    assert ensemble.choose_method(table, "stack") == ("stack", False)
    assert ensemble.choose_method(table, "equal + temperature") == ("equal", True)
    best = table.drop(index=[i for i in table.index if i.startswith("single")]).kl_nested.idxmin()
    assert ensemble.method_label(*ensemble.choose_method(table)) == best
    with pytest.raises(ValueError, match="unknown ensemble choice"):
        ensemble.choose_method(table, "single:a")


def _two_rater_pools(seed: int = 11):
    """Model ``a`` matches the >= 10-vote windows, model ``b`` the (more numerous) few-vote ones."""
    rng = np.random.default_rng(seed)
    n_many, n_few = 150, 450
    truth_many = rng.dirichlet(np.full(6, 0.5), size=n_many)
    truth_few = rng.dirichlet(np.full(6, 0.5), size=n_few)
    noise = rng.dirichlet(np.ones(6), size=n_many + n_few)
    a = np.vstack([truth_many, noise[n_many:]])
    b = np.vstack([noise[:n_many], truth_few])
    y = np.vstack([truth_many, truth_few])
    n_votes = np.r_[rng.integers(10, 25, n_many), rng.integers(1, 8, n_few)]
    groups = rng.integers(0, 40, n_many + n_few)
    return 0.9 * np.stack([a, b]) + 0.1 / 6, y, n_votes, groups


@pytest.mark.parametrize("method", ["nelder_mead", "stack"])
def test_blends_are_fitted_on_the_rows_asked_for(method):
    preds, y, n_votes, _ = _two_rater_pools()
    high = ensemble.fit_ensemble(preds, y, ["a", "b"], method=method, n_votes=n_votes)
    every = ensemble.fit_ensemble(preds, y, ["a", "b"], method=method, fit_min_votes=0)
    assert high.weights[0] > 0.9 and every.weights[1] > 0.6  # the two fits disagree
    assert high.fit_min_votes == 10 and every.fit_min_votes == 0
    many = n_votes >= 10
    # each is the fit of its rows alone: refit on exactly those rows gives the same weights
    alone = ensemble.fit_ensemble(preds[:, many], y[many], ["a", "b"], method=method, fit_min_votes=0)
    np.testing.assert_allclose(high.weights, alone.weights, atol=1e-6)
    assert high.oof_kl == pytest.approx(_kl(y[many], ensemble.blend({"a": preds[0], "b": preds[1]}, high)[many]))
    with pytest.raises(ValueError, match="no window has >= 30 votes"):
        ensemble.fit_ensemble(preds, y, ["a", "b"], n_votes=n_votes, fit_min_votes=30)


def test_temperature_blend_lowers_kl_and_blend_applies_it():
    rng = np.random.default_rng(12)
    truth = rng.dirichlet(np.full(6, 0.6), size=400)
    votes = np.stack([rng.multinomial(12, p) for p in truth])
    sharp = truth**3 / (truth**3).sum(axis=1, keepdims=True)  # over-confident: T about 3
    timid = np.sqrt(truth) / np.sqrt(truth).sum(axis=1, keepdims=True)  # T about 0.5
    preds = np.stack([sharp, timid])
    n_votes = votes.sum(axis=1)
    plain = ensemble.fit_ensemble(preds, votes, ["s", "t"], method="nelder_mead", n_votes=n_votes)
    scaled = ensemble.fit_ensemble(
        preds, votes, ["s", "t"], method="nelder_mead", n_votes=n_votes, temperature=True
    )
    assert plain.temperatures is None and scaled.label == "nelder_mead + temperature"
    np.testing.assert_allclose(scaled.temperatures, [3.0, 0.5], rtol=0.2)
    assert scaled.oof_kl < plain.oof_kl - 0.01
    # blend (the Predictor's path) = each model at its temperature, then the weights
    probs = {"t": timid, "s": sharp}
    ref = sum(
        w * (p ** (1 / t)) / (p ** (1 / t)).sum(axis=1, keepdims=True)
        for w, p, t in zip(scaled.weights, preds, scaled.temperatures, strict=True)
    )
    np.testing.assert_allclose(ensemble.blend(probs, scaled), ref, rtol=1e-10)
    assert _kl(votes, ensemble.blend(probs, scaled)) == pytest.approx(scaled.oof_kl, rel=1e-9)
    sub = scaled.subset(["t"])
    assert sub.models == ("t",) and sub.temperatures.tolist() == [scaled.temperatures[1]]
    t = scaled.temperatures[1]
    np.testing.assert_allclose(
        ensemble.blend(probs, sub), timid ** (1 / t) / (timid ** (1 / t)).sum(axis=1, keepdims=True)
    )


def _oof(label_ids, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(label_ids)
    df = pd.DataFrame(
        {
            "label_id": label_ids,
            "eeg_id": np.asarray(label_ids) // 10,
            "patient_id": np.asarray(label_ids) // 100,
            "fold": 0,
            "total_votes": 3,
        }
    )
    df[list(VOTE_COLUMNS)] = np.tile([2, 0, 0, 0, 0, 1], (n, 1))
    df[list(PRED_COLUMNS)] = rng.dirichlet(np.ones(6), size=n)
    return df


def test_align_oof_matches_rows_by_label_id():
    a = _oof([5, 1, 3, 9], 0)
    b = _oof([9, 3, 5, 1], 1)
    y, preds, rows = ensemble.align_oof({"a": a, "b": b}, return_frame=True)
    assert rows["label_id"].tolist() == [1, 3, 5, 9]
    np.testing.assert_allclose(y, np.tile([2 / 3, 0, 0, 0, 0, 1 / 3], (4, 1)))
    for j, df in enumerate((a, b)):
        expected = df.set_index("label_id").loc[[1, 3, 5, 9], list(PRED_COLUMNS)].to_numpy()
        np.testing.assert_array_equal(preds[j], expected)
    with pytest.raises(ValueError, match=r"'c' lacks 2 of the 4 rows of 'a'.*has 1 rows it lacks"):
        ensemble.align_oof({"a": a, "c": _oof([1, 3, 7], 2)})
    changed = b.copy()
    changed.loc[0, "lpd_vote"] = 5
    with pytest.raises(ValueError, match=r"'a' and 'b' disagree on the votes of 1 rows"):
        ensemble.align_oof({"a": a, "b": changed})


def test_ensemble_json_round_trip_and_blend_oof(tmp_path):
    rng = np.random.default_rng(8)
    preds = rng.dirichlet(np.ones(6), size=(2, 50))
    votes = rng.multinomial(5, np.full(6, 1 / 6), size=50)
    fitted = ensemble.fit_ensemble(
        preds, votes, ["m1", "m2"], method="stack", temperature=True, fit_min_votes=0
    )
    assert fitted.oof_kl == pytest.approx(
        _kl(votes, ensemble.apply_stack(preds, fitted.weights, fitted.bias, temperatures=fitted.temperatures))
    )
    path = ensemble.save_ensemble(tmp_path / "run" / "ensemble.json", fitted)
    loaded = ensemble.load_ensemble(path)
    assert json.loads(path.read_text())["method"] == "stack"
    assert loaded.models == ("m1", "m2") and loaded.method == "stack"
    np.testing.assert_array_equal(loaded.weights, fitted.weights)
    np.testing.assert_array_equal(loaded.bias, fitted.bias)
    assert loaded.oof_kl == fitted.oof_kl
    np.testing.assert_array_equal(loaded.temperatures, fitted.temperatures)
    assert loaded.fit_min_votes == 0 and loaded.label == "stack + temperature"
    probs = {"m1": preds[0], "m2": preds[1]}
    np.testing.assert_array_equal(ensemble.blend(probs, loaded), ensemble.blend(probs, fitted))
    oofs = {
        name: _oof(list(range(50)), j).assign(**dict(zip(PRED_COLUMNS, preds[j].T, strict=True)))
        for j, name in enumerate(["m1", "m2"])
    }
    table = ensemble.blend_oof(oofs, loaded)
    assert (table["model"] == "stack + temperature").all()
    np.testing.assert_allclose(table[list(PRED_COLUMNS)].to_numpy(), ensemble.blend(probs, loaded))


VALID = {
    "models": ["a", "b"],
    "weights": [0.4, 0.6],
    "bias": None,
    "method": "nelder_mead",
    "oof_kl": 0.5,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": [0.4, 0.5]}, "must sum to 1, they sum to 0.9"),
        ({"weights": [1.2, -0.2]}, "finite and non-negative"),
        ({"weights": [1.0]}, "2 models but 'weights' has shape"),
        ({"models": ["a", ""]}, "non-empty list of model names"),
        ({"models": ["a", "a"]}, "repeats names"),
        ({"bias": [0.0] * 5}, "'bias' must be null or 6 finite numbers"),
        ({"method": "median"}, "unknown ensemble method 'median'; expected one of"),
        ({"oof_kl": -1}, "'oof_kl' must be null or a non-negative number"),
        ({"extra": 1}, "expected an object with keys"),
        ({"temperatures": [1.0]}, "'temperatures' must be null or 2 positive numbers"),
        ({"temperatures": [1.0, -2.0]}, "'temperatures' must be null or 2 positive numbers"),
        ({"fit_min_votes": 2.5}, "'fit_min_votes' must be a non-negative integer"),
    ],
)
def test_load_ensemble_rejects_invalid_files(tmp_path, change, message):
    path = tmp_path / "ensemble.json"
    path.write_text(json.dumps(VALID | change))
    with pytest.raises(ValueError, match=f"{path.name}.*{message}"):
        ensemble.load_ensemble(path)


def test_load_ensemble_rejects_missing_keys_bad_json_and_absent_files(tmp_path):
    path = tmp_path / "ensemble.json"
    path.write_text(json.dumps({k: v for k, v in VALID.items() if k != "weights"}))
    with pytest.raises(ValueError, match="expected an object with keys"):
        ensemble.load_ensemble(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="ensemble.json: not valid JSON"):
        ensemble.load_ensemble(path)
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        ensemble.load_ensemble(tmp_path / "nothing.json")
    path.write_text(json.dumps(VALID))  # written before temperature scaling: no new keys
    old = ensemble.load_ensemble(path)
    assert old.weights.tolist() == [0.4, 0.6]
    assert old.temperatures is None and old.fit_min_votes == 0 and old.label == "nelder_mead"
    p = np.random.default_rng(0).dirichlet(np.ones(6), size=(2, 5))
    np.testing.assert_allclose(ensemble.blend({"a": p[0], "b": p[1]}, old), 0.4 * p[0] + 0.6 * p[1])
    path.write_text(json.dumps(VALID | {"temperatures": [2.0, 0.5], "fit_min_votes": 10}))
    new = ensemble.load_ensemble(path)
    assert new.temperatures.tolist() == [2.0, 0.5] and new.fit_min_votes == 10


@pytest.mark.parametrize("n_models", [1, 2])
def test_fit_blends_are_the_fit_ensemble_of_each_choice(tmp_path, n_models):
    preds, y, n_votes, groups = _two_rater_pools(13)
    preds, names = preds[:n_models], ["a", "b"][:n_models]
    blends = ensemble.fit_blends(preds, y, names, n_votes=n_votes, seed=1)
    methods = ["single"] if n_models == 1 else ["equal", "nelder_mead", "stack"]
    assert list(blends) == [ensemble.method_label(m, t) for m in methods for t in (False, True)]
    for label, fitted in blends.items():
        method, temperature = label.removesuffix(" + temperature"), label.endswith("temperature")
        single = ensemble.fit_ensemble(
            preds, y, names, method=method, temperature=temperature, n_votes=n_votes, seed=1
        )
        np.testing.assert_allclose(fitted.weights, single.weights, atol=1e-9)
        assert fitted.label == label and fitted.oof_kl == pytest.approx(single.oof_kl, rel=1e-9)
        assert (fitted.temperatures is None) == (not temperature)
    table = ensemble.compare_ensembles(preds, y, groups, n_votes=n_votes, names=names, n_outer=3)
    chosen = ensemble.method_label(*ensemble.choose_method(table))
    assert chosen in blends
    path = ensemble.save_blends(tmp_path / "blends.json", blends)
    loaded = ensemble.load_blends(path)
    assert list(loaded) == list(blends)
    for label in blends:
        np.testing.assert_array_equal(loaded[label].weights, blends[label].weights)
    path.write_text(json.dumps({"stack": VALID | {"weights": [0.5]}}))
    with pytest.raises(ValueError, match=r"blends.json blend 'stack': 2 models but 'weights'"):
        ensemble.load_blends(path)
