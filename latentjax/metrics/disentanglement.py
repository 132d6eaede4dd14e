"""Disentanglement of codes with respect to known factors: MIG, SAP, DCI and linear separability.

Each computes what its reference computes by default (codes [N, K], factors [N, F], one row per
sample): `mig`, `sap` and `dci` as disentanglement_lib's `mig.py`, `sap_score.py` and `dci.py`
(Chen et al. 2018, Kumar et al. 2018, Eastwood & Williams 2018), `linear_separability` as StyleGAN's
`metrics/linear_separability.py` (Karras et al. 2019). The estimators are scikit-learn's, as in the
references, so the numbers are theirs. Ours: MIG leaves out factors with a single value (the
reference divides by 0), and `dci(importance='ridge')` is for continuous factors. `sap` and `dci`
train on the first `train_fraction` (2/3) of the samples and test on the rest, unless
`test=(codes, factors)` is given.
Details: docs/methods.md#latentjaxmetricsdisentanglement
"""

from __future__ import annotations

import numpy as np

# scikit-learn is imported where its estimators are used: it takes about a third of `import latentjax`.

IMPORTANCES = ("gbt", "ridge")


def discretize(values, num_bins: int = 20) -> np.ndarray:
    """Integer bins [N, ...] of `values` [N, ...]: `num_bins` equal-width bins over each column's range."""
    values = np.asarray(values, np.float64)
    if values.ndim == 1:
        return discretize(values[:, None], num_bins)[:, 0]
    lo, hi = values.min(axis=0), values.max(axis=0)
    edges = [np.linspace(a, b, num_bins + 1)[1:-1] for a, b in zip(lo, hi)]
    return np.stack([np.digitize(values[:, j], edges[j]) for j in range(values.shape[1])], axis=1)


def _entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """MI (nats) of two integer label vectors from their joint histogram."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])))


def _check(codes, factors, names: tuple[str, str] = ("codes", "factors")) -> tuple[np.ndarray, np.ndarray]:
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0] or codes.shape[0] < 2:
        raise ValueError(f"{names[0]} [N, K] and {names[1]} [N, F] with the same N >= 2 expected, got "
                         f"{codes.shape} and {factors.shape}")
    if not (np.all(np.isfinite(codes)) and np.all(np.isfinite(factors))):
        raise ValueError(f"{names[0]} and {names[1]} must be finite")
    return codes, factors


def _check_discrete(factors: np.ndarray, name: str) -> np.ndarray:
    if not np.array_equal(factors, np.round(factors)):
        raise ValueError(f"{name}: {name} must be discrete labels (integers); discretize continuous factors first "
                         f"(latentjax.metrics.disentanglement.discretize)")
    return factors.astype(np.int64)


def _split(codes, factors, test, train_fraction: float):
    """(train codes, train factors, test codes, test factors): the given test set, or the first
    ceil(train_fraction * N) samples against the rest."""
    if test is not None:
        if not isinstance(test, (tuple, list)) or len(test) != 2:
            raise ValueError(f"test must be a pair (codes, factors), got {type(test).__name__}")
        codes_test, factors_test = _check(*test, names=("test codes", "test factors"))
        if codes_test.shape[1] != codes.shape[1] or factors_test.shape[1] != factors.shape[1]:
            raise ValueError(f"test codes / factors have {codes_test.shape[1]} / {factors_test.shape[1]} columns, the "
                             f"training ones {codes.shape[1]} / {factors.shape[1]}")
        return codes, factors, codes_test, factors_test
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n = int(np.ceil(len(codes) * train_fraction))
    if n >= len(codes):
        raise ValueError(f"train_fraction {train_fraction} leaves no test samples of {len(codes)}")
    return codes[:n], factors[:n], codes[n:], factors[n:]


def mutual_information_matrix(codes, factors, num_bins: int = 20) -> np.ndarray:
    """MI [K, F] between each discretised code dimension and each discrete factor."""
    codes, factors = _check(codes, factors)
    binned = discretize(codes, num_bins)
    return np.array([[_mutual_information(binned[:, k], factors[:, f]) for f in range(factors.shape[1])]
                     for k in range(codes.shape[1])])


def mig(codes, factors, num_bins: int = 20) -> float:
    """Mean over factors of (largest - second largest MI with a code dimension) / H(factor);
    factors with a single value (entropy 0) are left out. Needs at least two code dimensions."""
    codes, factors = _check(codes, factors)
    if codes.shape[1] < 2:
        raise ValueError(f"mig needs at least two code dimensions, got {codes.shape[1]}")
    mi = mutual_information_matrix(codes, factors, num_bins)
    entropy = np.array([_entropy(factors[:, f]) for f in range(factors.shape[1])])
    top = np.sort(mi, axis=0)[::-1]
    keep = entropy > 0
    if not np.any(keep):
        return float("nan")
    return float(np.mean((top[0, keep] - top[1, keep]) / entropy[keep]))


def sap_matrix(codes, factors, *, test=None, train_fraction: float = 2 / 3,
               continuous_factors: bool = False) -> np.ndarray:
    """The SAP score matrix [K, F]: per code dimension and factor, a one-dimensional LinearSVC's test
    accuracy (discrete factors) or the squared correlation on the training samples (continuous)."""
    from sklearn.svm import LinearSVC

    codes, factors = _check(codes, factors)
    x, y, x_test, y_test = _split(codes, factors, test, train_fraction)
    scores = np.zeros((codes.shape[1], factors.shape[1]))
    for j in range(factors.shape[1]):
        if not continuous_factors:
            labels = _check_discrete(y[:, j], f"factors[:, {j}]")
            if len(np.unique(labels)) < 2:
                raise ValueError(f"sap: factor {j} takes a single value in the training samples; a classifier needs two")
        for i in range(codes.shape[1]):
            if continuous_factors:
                cov = np.cov(x[:, i], y[:, j], ddof=1)
                scores[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
            else:
                classifier = LinearSVC(C=0.01, class_weight="balanced")
                classifier.fit(x[:, i:i + 1], labels)
                scores[i, j] = np.mean(classifier.predict(x_test[:, i:i + 1]) == y_test[:, j])
    return scores


def sap(codes, factors, *, test=None, train_fraction: float = 2 / 3, continuous_factors: bool = False) -> float:
    """Mean over factors of the gap between the two best code dimensions' scores (`sap_matrix`)."""
    if np.asarray(codes).ndim == 2 and np.asarray(codes).shape[1] < 2:
        raise ValueError(f"sap needs at least two code dimensions, got {np.asarray(codes).shape[1]}")
    top = np.sort(sap_matrix(codes, factors, test=test, train_fraction=train_fraction,
                             continuous_factors=continuous_factors), axis=0)
    return float(np.mean(top[-1] - top[-2]))


def gbt_importance(codes, factors, codes_test, factors_test) -> tuple[np.ndarray, float, float]:
    """(importance [K, F], train accuracy, test accuracy): one `GradientBoostingClassifier` (the
    defaults) per factor, its feature importances and its accuracies averaged over factors."""
    from sklearn.ensemble import GradientBoostingClassifier

    importance = np.zeros((codes.shape[1], factors.shape[1]))
    train, test = [], []
    for j in range(factors.shape[1]):
        labels = _check_discrete(factors[:, j], f"factors[:, {j}]")
        if len(np.unique(labels)) < 2:
            raise ValueError(f"dci: factor {j} takes a single value in the training samples; a classifier needs two")
        model = GradientBoostingClassifier(random_state=0).fit(codes, labels)
        importance[:, j] = np.abs(model.feature_importances_)
        train.append(np.mean(model.predict(codes) == labels))
        test.append(np.mean(model.predict(codes_test) == factors_test[:, j]))
    return importance, float(np.mean(train)), float(np.mean(test))


def ridge_importance(codes, targets, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """(|standardised ridge coefficients| [K, F], held-out R^2 [F]) of each target column regressed on the
    codes; the first half of the samples fits, the second half scores."""
    codes, targets = np.asarray(codes, np.float64), np.asarray(targets, np.float64)
    mean, std = codes.mean(axis=0), codes.std(axis=0)
    x = (codes - mean) / np.where(std > 0, std, 1.0)
    half = max(1, len(x) // 2)
    importance, r2 = [], []
    for f in range(targets.shape[1]):
        y = targets[:, f]
        y = (y - y[:half].mean()) / (y[:half].std() or 1.0)
        a, b = x[:half], y[:half]
        coef = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ b)
        importance.append(np.abs(coef))
        test, truth = x[half:] if len(x) > half else a, y[half:] if len(x) > half else b
        residual = np.sum(np.square(truth - test @ coef))
        total = np.sum(np.square(truth - truth.mean()))
        r2.append(1.0 - residual / total if total > 0 else 0.0)
    return np.stack(importance, axis=1), np.asarray(r2)


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """1 - entropy (base `base`) of each row of p, normalised, with the reference's 1e-11 added."""
    if base < 2:
        return np.ones(p.shape[0])
    p = p + 1e-11
    p = p / p.sum(axis=1, keepdims=True)
    return 1.0 + np.sum(p * np.log(p), axis=1) / np.log(base)


def disentanglement_completeness(importance) -> tuple[float, float]:
    """(D, C) of an importance matrix [K, F] as disentanglement_lib: per code 1 - H_F(row), weighted by
    the code's share of the importance; per factor 1 - H_K(column), weighted by the factor's share."""
    importance = np.asarray(importance, np.float64)
    k, f = importance.shape
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    per_code, per_factor = _one_minus_entropy(importance, f), _one_minus_entropy(importance.T, k)
    d = float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))
    c = float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))
    return d, c


def dci(codes, factors, *, test=None, train_fraction: float = 2 / 3, importance: str = "gbt",
        ridge: float = 1e-3) -> dict[str, float]:
    """{'disentanglement', 'completeness', 'informativeness', 'informativeness_train'}: with
    `importance='gbt'` (the reference) factors are discrete labels and informativeness is the test
    accuracy (and the train accuracy); with 'ridge' (ours) factors may be continuous, the first half
    of the samples fits and informativeness is the held-out R^2 (no train score; `test` and
    `train_fraction` do not apply)."""
    codes, factors = _check(codes, factors)
    if importance == "gbt":
        matrix, train, test_accuracy = gbt_importance(*_split(codes, factors, test, train_fraction))
        d, c = disentanglement_completeness(matrix)
        return {"disentanglement": d, "completeness": c, "informativeness": test_accuracy,
                "informativeness_train": train}
    if importance == "ridge":
        if test is not None:
            raise ValueError("dci(importance='ridge') splits its samples in halves; it takes no test set")
        matrix, r2 = ridge_importance(codes, factors, ridge)
        d, c = disentanglement_completeness(matrix)
        return {"disentanglement": d, "completeness": c, "informativeness": float(np.mean(r2))}
    raise ValueError(f"importance must be one of {IMPORTANCES}, got {importance!r}")


def _bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


def separability_entropies(latents, logits, num_keep: int | None = None) -> np.ndarray:
    """H(label | SVM prediction) in bits [A], one per attribute column of `logits` (see `linear_separability`)."""
    from sklearn.svm import LinearSVC

    latents, logits = _check(latents, logits, names=("latents", "logits"))
    n = len(latents)
    num_keep = n // 2 if num_keep is None else int(num_keep)
    if not 2 <= num_keep <= n:
        raise ValueError(f"num_keep must be in [2, {n}] (the samples), got {num_keep}")
    entropies = []
    for a in range(logits.shape[1]):
        pair = np.stack([logits[:, a], -logits[:, a]], axis=1).astype(np.float32)
        probs = np.exp(pair - pair.max(axis=1, keepdims=True))
        probs = probs / probs.sum(axis=1, keepdims=True)
        keep = np.argsort(-probs.max(axis=1), kind="stable")[:num_keep]  # the most confident, ties in sample order
        targets = np.argmax(probs[keep], axis=1)
        if len(np.unique(targets)) > 1:
            predictions = LinearSVC().fit(latents[keep], targets).predict(latents[keep])
        else:  # one class: the reference's SVM fails and it takes the prediction as perfect
            predictions = targets
        joint = np.array([[np.mean((predictions == row) & (targets == col)) for col in (0, 1)] for row in (0, 1)],
                         np.float32)
        joint = joint / joint.sum()
        marginal_x, marginal_y = joint.sum(axis=1), joint.sum(axis=0)
        nz = joint > 0
        mutual = float(np.sum(joint[nz] * np.log2(joint[nz] / np.outer(marginal_x, marginal_y)[nz])))
        entropies.append(max(0.0, _bits(marginal_y) - mutual))
    return np.asarray(entropies)


def linear_separability(latents, logits, num_keep: int | None = None) -> float:
    """2 ** (sum over attributes of H(label | linear SVM prediction)) for latents [N, D] and one
    classifier logit per attribute, logits [N, A]; `num_keep` most confident samples (default N // 2)."""
    return float(2.0 ** np.sum(separability_entropies(latents, logits, num_keep)))
