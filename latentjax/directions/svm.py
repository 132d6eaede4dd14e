"""A linear soft-margin SVM, solved as libsvm solves `sklearn.svm.SVC(kernel='linear')`.

The dual  min_a 1/2 aᵀQa - Σa  s.t.  0 <= a <= C,  yᵀa = 0  (Q_ij = y_i y_j x_i·x_j, y = ±1)  by
sequential minimal optimisation with libsvm's second-order working-set selection (Fan, Chen & Lin,
JMLR 2005), stopping when the maximal KKT violation is below `tol` (libsvm's `eps`, sklearn's `tol`,
1e-3). The primal solution is w = Σ a_i y_i x_i and b = -rho, rho as libsvm computes it.

One jitted `lax.while_loop`. Each step reads two columns of the Gram matrix: from the whole
matrix, computed once, when it fits in `gram_bytes` (N = 10^4 points take 0.4 GB in float32), else
computed on the fly (X x_i, O(N d) per step). No shrinking: libsvm's shrinking changes the path
(the iteration counts differ), not the optimum; each of our steps touches all N points.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

TAU = 1e-12  # libsvm's floor for a non-positive curvature along the pair
GRAM_BYTES = 2 ** 31  # the largest Gram matrix computed up front


@dataclasses.dataclass(frozen=True)
class LinearSVM:
    """The fitted hyperplane w·x + b (positive side: label 1) and how the solver ended."""

    coef: np.ndarray  # w [d]
    intercept: float  # b
    iterations: int
    violation: float  # the final maximal KKT violation (converged when < tol)

    def decision(self, x) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.coef + self.intercept

    def predict(self, x) -> np.ndarray:
        """Labels 1 (w·x + b > 0) or 0, as sklearn's `predict` for labels (0, 1)."""
        return (self.decision(x) > 0).astype(np.int64)


def linear_svm(x, labels, *, C: float = 1.0, tol: float = 1e-3, max_iter: int = 10_000_000,
               gram_bytes: int = GRAM_BYTES) -> LinearSVM:
    """Fit a linear SVM to points x [N, d] with binary labels [N] (0/1 or -1/+1; 1 is the positive class)."""
    x = np.asarray(x)
    labels = np.asarray(labels)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be [N >= 2, d], got shape {x.shape}")
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must be [N={x.shape[0]}], got shape {labels.shape}")
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1} and not values <= {-1, 1}:
        raise ValueError(f"labels must be 0/1 or -1/+1, got values {sorted(values)[:5]}")
    if len(values) != 2:
        raise ValueError(f"labels need both classes, got only {sorted(values)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x has NaN or infinite entries")
    for name, value in (("C", C), ("tol", tol)):
        if not (isinstance(value, (int, float)) and value > 0 and np.isfinite(value)):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    y = np.where(labels == 1, 1.0, -1.0)
    # float64 where enabled, as libsvm; float32 otherwise (then a tol below ~1e-5 may not be reached)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    use_gram = x.shape[0] ** 2 * jnp.dtype(dtype).itemsize <= gram_bytes
    alpha, grad, iterations, violation = _smo(jnp.asarray(x, dtype), jnp.asarray(y, dtype), float(C), float(tol),
                                              int(max_iter), bool(use_gram))
    if violation >= tol:
        raise RuntimeError(f"the SVM solver stopped after max_iter={max_iter} steps with KKT violation "
                           f"{float(violation):.3g} >= tol={tol}")
    alpha, grad = np.asarray(alpha, np.float64), np.asarray(grad, np.float64)
    coef = (alpha * y) @ np.asarray(x, np.float64)
    return LinearSVM(coef=coef, intercept=-_rho(alpha, grad, y, C), iterations=int(iterations),
                     violation=float(violation))


def _rho(alpha, grad, y, C) -> float:
    """libsvm's rho: the mean of y_i G_i over free vectors, or the middle of the feasible interval."""
    yg = y * grad
    free = (alpha > 0) & (alpha < C)
    if free.any():
        return float(yg[free].mean())
    at_upper = alpha >= C
    # bounds on rho from the vectors at a bound (libsvm's calculate_rho)
    ub_mask = (at_upper & (y < 0)) | (~at_upper & (y > 0))
    lb_mask = (at_upper & (y > 0)) | (~at_upper & (y < 0))
    ub = yg[ub_mask].min() if ub_mask.any() else np.inf
    lb = yg[lb_mask].max() if lb_mask.any() else -np.inf
    return float((ub + lb) / 2)


@jax.jit(static_argnums=(2, 3, 4, 5))
def _smo(x, y, C, tol, max_iter, use_gram):
    n = x.shape[0]
    hi = jax.lax.Precision.HIGHEST
    diag = jnp.sum(x * x, axis=1)
    if use_gram:
        gram = jnp.matmul(x, x.T, precision=hi)
        column = lambda i: gram[i]  # noqa: E731
    else:
        column = lambda i: jnp.matmul(x, x[i], precision=hi)  # noqa: E731

    def step(state):
        """One SMO step from (alpha, grad, it), and the KKT violation it started from (no step if below tol)."""
        alpha, grad, it, _ = state
        minus_yg = -y * grad
        up = ((y > 0) & (alpha < C)) | ((y < 0) & (alpha > 0))
        low = ((y > 0) & (alpha > 0)) | ((y < 0) & (alpha < C))
        i = jnp.argmax(jnp.where(up, minus_yg, -jnp.inf))
        violation = minus_yg[i] - jnp.min(jnp.where(low, minus_yg, jnp.inf))
        k_i = column(i)
        b = minus_yg[i] - minus_yg  # > 0 for candidates j
        a = jnp.maximum(diag[i] + diag - 2 * k_i, TAU)
        j = jnp.argmin(jnp.where(low & (b > 0), -(b * b) / a, jnp.inf))
        # move a_i by +y_i t and a_j by -y_j t (keeps yᵀa), t >= 0, clipped to the box
        room_i = jnp.where(y[i] > 0, C - alpha[i], alpha[i])
        room_j = jnp.where(y[j] > 0, alpha[j], C - alpha[j])
        active = violation >= tol
        t = jnp.where(active, jnp.minimum(b[j] / a[j], jnp.minimum(room_i, room_j)), 0.0)
        alpha = jnp.clip(alpha.at[i].add(y[i] * t).at[j].add(-y[j] * t), 0.0, C)
        grad = grad + t * y * (k_i - column(j))
        return alpha, grad, it + active, violation

    alpha0 = jnp.zeros(n, x.dtype)
    grad0 = -jnp.ones(n, x.dtype)  # G = Qa - e at a = 0
    state = (alpha0, grad0, jnp.asarray(0), jnp.asarray(jnp.inf, x.dtype))
    return jax.lax.while_loop(lambda s: (s[3] >= tol) & (s[2] < max_iter), step, state)
