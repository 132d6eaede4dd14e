"""Linear-encoded semantics (Zheng et al., CVPR 2021): each scored semantic regressed on the latents;
the coefficient vector, normalised, is its direction.

The paper has no public code; these are our choices. The regression runs on the space's direction
coordinates (`space.pool`), centred, with an intercept. `l1 = 0` (default) is ridge regression in
closed form; `l1 > 0` adds a sparsity penalty (by FISTA) whose zeros give localised directions:
the elastic net over coordinates (`sparsity="coordinates"`) or group lasso over generator layers
(`sparsity="layers"`). Each direction's score is its R² on the held-out `holdout` share of the
samples, so a semantic the latents do not encode linearly scores near 0.
Details: docs/methods.md#latentjaxdirectionsregression
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin, configure
from latentjax.directions.base import Directions
from latentjax.latent import as_space
from latentjax.metrics.scorer import Scorer, attribute_names, scored_codes


SPARSITY = ("coordinates", "layers")


@dataclasses.dataclass(frozen=True)
class LinearSemanticsConfig(ConfigMixin):
    attributes: tuple[str, ...] = ()  # the scorer's attributes to find directions for; empty: all
    num_samples: int = 20_000
    ridge: float = 1e-3  # L2 weight, per sample
    l1: float = 0.0  # sparsity weight, per sample (0: plain ridge regression)
    sparsity: str = "coordinates"  # what l1 makes sparse: 'coordinates' (L1) or 'layers' (group lasso)
    holdout: float = 0.2  # share of the (valid) samples kept out of the fit to score it
    iterations: int = 2000  # FISTA steps (l1 > 0)
    batch_size: int = 256

    def __post_init__(self):
        if self.sparsity not in SPARSITY:
            raise ValueError(f"sparsity must be one of {SPARSITY}, got {self.sparsity!r}")


@dataclasses.dataclass(frozen=True)
class Regression:
    """One semantic's fit: coefficients [d] (not normalised), intercept, R² on the fit and held-out samples."""

    coef: np.ndarray
    intercept: float
    r2_fit: float
    r2_holdout: float


def regress(latents, scores, *, ridge: float = 1e-3, l1: float = 0.0, holdout: float = 0.2, iterations: int = 2000,
            groups=None, seed: int = 0) -> Regression:
    """Fit scores [N] on latents [N, d] (rows with non-finite scores dropped) as the module docstring says.

    `groups` [d] (integers): the group of each coordinate for the group-lasso penalty; None: every
    coordinate its own group, the plain L1 penalty."""
    x = np.asarray(latents, np.float64)
    y = np.asarray(scores, np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"latents must be [N, d] and scores [N], got shapes {x.shape} and {y.shape}")
    groups = np.arange(x.shape[1]) if groups is None else np.asarray(groups)
    if groups.shape != (x.shape[1],) or not np.issubdtype(groups.dtype, np.integer) or groups.min() < 0:
        raise ValueError(f"groups must be [d={x.shape[1]}] non-negative integers (each coordinate's group), "
                         f"got {groups.dtype} of shape {groups.shape}")
    for name, value, low in (("ridge", ridge, 0.0), ("l1", l1, 0.0)):
        if not (isinstance(value, (int, float)) and value >= low and np.isfinite(value)):
            raise ValueError(f"{name} must be a number >= {low}, got {value!r}")
    if not (isinstance(holdout, (int, float)) and 0 <= holdout < 1):
        raise ValueError(f"holdout must be in [0, 1), got {holdout!r}")
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(len(y) * holdout)
    test, train = order[:n_test], order[n_test:]
    if len(train) < 2:
        raise ValueError(f"too few samples to fit: {len(train)} with finite scores outside the holdout")
    mean_x, mean_y = x[train].mean(axis=0), y[train].mean()
    xc, yc = x[train] - mean_x, y[train] - mean_y
    n = len(train)
    if l1 == 0:
        coef = np.linalg.solve(xc.T @ xc / n + ridge * np.eye(x.shape[1]), xc.T @ yc / n)
    else:
        _, groups = np.unique(groups, return_inverse=True)  # ids 0 .. G-1
        coef = np.asarray(_sparse_fit(jnp.asarray(xc, jnp.float32), jnp.asarray(yc, jnp.float32),
                                      jnp.asarray(groups, jnp.int32), float(ridge), float(l1), int(iterations),
                                      int(groups.max()) + 1), np.float64)
    intercept = mean_y - mean_x @ coef

    def r2(index):
        if len(index) < 2 or np.var(y[index]) == 0:
            return float("nan")
        return float(1 - np.mean((x[index] @ coef + intercept - y[index]) ** 2) / np.var(y[index]))

    return Regression(coef, float(intercept), r2(train), r2(test))


@jax.jit(static_argnums=(3, 4, 5, 6))
def _sparse_fit(x, y, groups, ridge, l1, iterations, num_groups):
    """FISTA on 1/(2n) |x b - y|² + ridge/2 |b|² + l1 Σ_g sqrt(|g|) |b_g|₂ (centred x, y); with one
    coordinate per group the penalty is l1 |b|₁ and the proximal step the soft threshold."""
    n = x.shape[0]
    hi = jax.lax.Precision.HIGHEST
    gram = jnp.matmul(x.T, x, precision=hi) / n
    cross = jnp.matmul(x.T, y, precision=hi) / n
    step = 1.0 / (jnp.linalg.eigvalsh(gram)[-1] + ridge)
    weights = jnp.sqrt(jax.ops.segment_sum(jnp.ones_like(y, shape=groups.shape), groups, num_groups))

    def body(_, state):
        b, v, t = state
        grad = jnp.matmul(gram, v, precision=hi) - cross + ridge * v
        u = v - step * grad
        norms = jnp.sqrt(jax.ops.segment_sum(u * u, groups, num_groups))
        shrink = jnp.maximum(1 - step * l1 * weights / jnp.maximum(norms, jnp.finfo(u.dtype).tiny), 0.0)
        b_next = u * shrink[groups]
        t_next = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        return b_next, b_next + (t - 1) / t_next * (b_next - b), t_next

    zeros = jnp.zeros(x.shape[1], x.dtype)
    return jax.lax.fori_loop(0, iterations, body, (zeros, zeros, jnp.asarray(1.0, x.dtype)))[0]


def linear_semantics(source, scorer: Scorer, config: LinearSemanticsConfig | dict | None = None, key=None,
                     progress: bool = True, **overrides) -> Directions:
    """One regression direction per attribute of `scorer` (in attribute order), scored by held-out R²."""
    config = configure(LinearSemanticsConfig, config, overrides)
    attributes = attribute_names(scorer, config.attributes)
    space = as_space(source)
    layers = space.coordinate_layers
    if config.sparsity == "layers" and layers is None:
        raise ValueError(f"sparsity='layers' needs a space whose coordinates belong to generator layers (StyleSpace "
                         f"'s'); the {space.name!r} space has none")
    _, latents, scores = scored_codes(space, scorer, config.num_samples, batch_size=config.batch_size, key=key,
                                      progress=progress)
    fits = [regress(latents, scores[:, scorer.names.index(a)], ridge=config.ridge, l1=config.l1,
                    holdout=config.holdout, iterations=config.iterations,
                    groups=layers if config.sparsity == "layers" else None) for a in attributes]
    norms = [np.linalg.norm(f.coef) for f in fits]
    flat = [a for a, norm in zip(attributes, norms) if not norm > 0]
    if flat:
        raise ValueError(f"no direction for {flat}: every coefficient is 0 (l1={config.l1} too strong?)")
    settings = {**config.to_dict(), "scorer": list(scorer.names), "directions": attributes,
                "r2_fit": [f.r2_fit for f in fits], "nonzero": [int(np.sum(f.coef != 0)) for f in fits],
                "coefficient_norm": [float(n) for n in norms]}
    if layers is not None:
        settings["layers_used"] = [sorted(int(i) for i in np.unique(layers[f.coef != 0])) for f in fits]
    return Directions(np.stack([f.coef / n for f, n in zip(fits, norms)]), np.asarray([f.r2_holdout for f in fits]),
                      space.spec, "linear_semantics", settings)
