"""Disentanglement of codes with respect to known factors: MIG and DCI.

- `mig(codes, factors, num_bins=20)`: the Mutual Information Gap (Chen et al. 2018) as
  disentanglement_lib computes it: each code dimension discretised into `num_bins` equal-width
  bins over its range, its mutual information with each discrete factor, and per factor
  (top-1 MI - top-2 MI) / H(factor), averaged over factors.
- `dci(codes, factors)`: Disentanglement, Completeness, Informativeness (Eastwood & Williams
  2018) with the importance matrix of a standardised ridge regression per factor (|coefficient|;
  the lasso-style variant) and informativeness as the held-out R^2.

Factors are given as integer labels (discretise continuous factors first with `discretize`).
"""

from __future__ import annotations

import numpy as np


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


def _check(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0] or codes.shape[0] < 2:
        raise ValueError(f"codes [N, K] and factors [N, F] with the same N >= 2 expected, got {codes.shape} and "
                         f"{factors.shape}")
    return codes, factors


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


def importance_matrix(codes, targets, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
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


def dci(codes, factors, ridge: float = 1e-3) -> dict[str, float]:
    """{'disentanglement', 'completeness', 'informativeness'} of codes [N, K] for factors [N, F] (values,
    continuous or discrete): 1 - the entropy (base F) of each code's importance over factors, weighted by
    the code's share of all importance; 1 - the entropy (base K) of each factor's importance over codes,
    averaged; the mean held-out R^2."""
    codes, factors = _check(codes, factors)
    importance, r2 = importance_matrix(codes, factors, ridge)
    k, f = importance.shape
    total = importance.sum()
    if total <= 0:
        return {"disentanglement": 0.0, "completeness": 0.0, "informativeness": float(np.mean(r2))}

    def one_minus_entropy(p, base):
        p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-30)
        h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1) / np.log(base)
        return 1.0 - h

    per_code = one_minus_entropy(importance, f) if f > 1 else np.ones(k)
    weights = importance.sum(axis=1) / total
    per_factor = one_minus_entropy(importance.T, k) if k > 1 else np.ones(f)
    return {"disentanglement": float(np.sum(weights * per_code)), "completeness": float(np.mean(per_factor)),
            "informativeness": float(np.mean(r2))}
