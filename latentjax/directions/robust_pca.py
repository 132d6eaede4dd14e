"""Robust PCA (principal component pursuit) by ADMM, as LowRankGAN factorises JᵀJ: M = L + S.

Minimises ||L||_* + lam * ||S||_1 subject to L + S = M (Wright & Ma, "High-Dimensional Data
Analysis with Low-Dimensional Models", ch. 5), with the reference's choices
(zhujiapeng/LowRankGAN `RobustPCA.py`): L, S and the multiplier start at zero; the penalty
mu = M.size / (4 ||M||_1) (||M||_1 the largest absolute column sum) stays fixed; each iteration
thresholds the singular values of M - S - Y/mu by 1/mu (-> L), soft-thresholds M - L - Y/mu by
lam/mu (-> S) and updates the multiplier Y += mu (L + S - M); it stops once ||L + S - M||_F <=
tol * ||M||_F or after `max_iter` iterations. Plain numpy in float64: the matrices are small
(latent-dim square) and LowRankGAN reads the rank of L, so it is computed as the reference does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

LAMBDA = 1 / 60  # LowRankGAN's `--lamb 60`


class RobustPCA(NamedTuple):
    low_rank: np.ndarray  # L
    sparse: np.ndarray  # S
    iterations: int  # ADMM iterations run
    converged: bool  # the residual fell to tol * ||M||_F within max_iter


def shrink(x: np.ndarray, tau: float) -> np.ndarray:
    """Soft threshold: sign(x) max(|x| - tau, 0), elementwise."""
    return np.sign(x) * np.maximum(np.abs(x) - tau, 0)


def singular_value_threshold(x: np.ndarray, tau: float) -> np.ndarray:
    """x with its singular values soft-thresholded by tau (the proximal map of tau ||.||_*)."""
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    return u @ (shrink(s, tau)[:, None] * vh)


def robust_pca(matrix, lam: float | None = LAMBDA, max_iter: int = 10_000, tol: float = 1e-7) -> RobustPCA:
    """Split a matrix into low-rank L plus sparse S (ADMM; see the module docstring).

    `lam` weighs the sparse part (None: 1 / sqrt(max(M.shape)), the reference's fallback). A zero
    matrix splits into zeros with no iteration (the reference's mu would divide by zero).
    """
    m = np.asarray(matrix, np.float64)
    if m.ndim != 2 or not np.all(np.isfinite(m)):
        raise ValueError(f"matrix must be a finite 2-D array, got shape {m.shape}"
                         f"{'' if m.ndim != 2 else ' with non-finite entries'}")
    if lam is None:
        lam = 1 / np.sqrt(max(m.shape))
    if not lam > 0:
        raise ValueError(f"lam must be positive, got {lam}")
    if not (isinstance(max_iter, (int, np.integer)) and max_iter >= 1):
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    norm1 = np.linalg.norm(m, ord=1)
    if norm1 == 0:
        return RobustPCA(np.zeros_like(m), np.zeros_like(m), 0, True)
    mu = m.size / (4 * norm1)
    mu_inv = 1 / mu
    target = tol * np.linalg.norm(m, ord="fro")
    low_rank, sparse, multiplier = np.zeros_like(m), np.zeros_like(m), np.zeros_like(m)
    error, iterations = np.inf, 0
    while error > target and iterations < max_iter:
        low_rank = singular_value_threshold(m - sparse - mu_inv * multiplier, mu_inv)
        sparse = shrink(m - low_rank - mu_inv * multiplier, mu_inv * lam)
        multiplier = multiplier + mu * (low_rank + sparse - m)
        error = np.linalg.norm(low_rank + sparse - m, ord="fro")
        iterations += 1
    return RobustPCA(low_rank, sparse, iterations, bool(error <= target))
