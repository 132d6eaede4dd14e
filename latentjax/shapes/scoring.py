"""How well latent directions of a shapes generator line up with the world's true factors.

For a generator trained on `latentjax.shapes.world` the factors of every image can be read back
(`latentjax.shapes.reading.readout`), so a direction can be scored by what it changes. From
`num_samples` latents drawn from the space's prior, each direction is walked by -distance and
+distance (`latentjax.walks`); each (start, end) pair whose two images are both valid renders
gives one factor change per factor:

- shape: 1 if the shape class differs, else 0 (the mean is the rate of shape flips);
- rotation, hue (periodic): the circular distance, at most 0.5;
- rotation only where start and end show the same shape and it is not a circle (a circle has no
  rotation, and a fraction of a square's and a triangle's period are not comparable);
- x, y, scale, background: the absolute difference.

`change[k, f]` is the mean change of factor f along direction k over the counted pairs.

Normalisation: factors move on different scales (a flip rate, a circular distance, a linear
range), so each column is divided by the factor's spread under the prior: the mean of the same
distance between the start images of two different samples, over every pair of valid start
images (the change a jump to an independent sample makes, on average). `purity[k, f]` is then
the share of direction k's total normalised change that goes to factor f. For each factor the
best direction is the one of highest purity among those that move the factor by at least
`min_change` of its spread (a direction that changes almost nothing is not an answer); its purity
(0 when no direction qualifies) is the factor's score, and `num_pure` counts the factors whose
score reaches `threshold`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from latentjax import walks
from latentjax.config import ConfigMixin
from latentjax.shapes import reading, world
from latentjax.viz.heatmap import heatmap


@dataclasses.dataclass(frozen=True)
class GroundTruthConfig(ConfigMixin):
    num_samples: int = 64       # start latents
    distance: float = 3.0       # walk steps -distance and +distance
    walk: str = "linear"        # a `latentjax.walks.WALKS` name
    batch_size: int = 64        # images decoded and read out per call
    threshold: float = 0.8      # purity that counts a factor as found
    min_change: float = 0.1     # normalised change a direction needs to be a factor's best
    valid_tol: float = reading.VALID_TOL  # rerender error below which an image counts (raise it for young GANs)
    seed: int = 0

    def __post_init__(self):
        if self.num_samples < 2 or self.batch_size < 1:
            raise ValueError(f"num_samples must be >= 2 and batch_size >= 1, got {self.num_samples}, {self.batch_size}")
        if not self.distance > 0:
            raise ValueError(f"distance must be positive, got {self.distance}")
        if self.walk not in walks.WALKS:
            raise ValueError(f"walk must be one of {sorted(walks.WALKS)}, got {self.walk!r}")


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """Scores of K directions against the factors (`factor_names`, all of `world.FACTOR_NAMES`).

    `change` [K, F] mean factor change (module docstring); `spread` [F] the prior spread;
    `purity` [K, F]; `best` [F] the best direction per factor (-1: none moves it enough);
    `best_purity` [F]; `num_pure` factors with best_purity >= threshold; `valid` [K] fraction of
    (start, end) pairs counted per direction and `valid_fraction` over all of them.
    """

    change: np.ndarray
    spread: np.ndarray
    purity: np.ndarray
    best: np.ndarray
    best_purity: np.ndarray
    num_pure: int
    valid: np.ndarray
    valid_fraction: float
    factor_names: tuple[str, ...]
    settings: dict

    @property
    def normalised(self) -> np.ndarray:
        """[K, F] change divided by the prior spread (NaN for a factor that never varies)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.change / np.where(self.spread > 0, self.spread, np.nan)

    def to_dict(self) -> dict:
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dataclasses.asdict(self).items()}
        return json_safe(out)

    def to_table(self) -> str:
        """Markdown: one row per direction (factor changes normalised by the spread, its valid
        fraction), then the best direction's purity per factor."""
        head = "| direction | " + " | ".join(self.factor_names) + " | valid |\n"
        head += "|---" * (len(self.factor_names) + 2) + "|\n"
        rows = [f"| {k} | " + " | ".join(_cell(v) for v in self.normalised[k]) + f" | {self.valid[k]:.2f} |"
                for k in range(len(self.change))]
        best = " | ".join("-" if b < 0 else f"{p:.2f} (d{b})" for b, p in zip(self.best, self.best_purity))
        return (head + "\n".join(rows) + f"\n| **best purity** | {best} | {self.valid_fraction:.2f} |\n\n"
                f"{self.num_pure} of {len(self.factor_names)} factors have a direction with purity >= "
                f"{self.settings['threshold']:g}.\n")

    def heatmaps(self) -> dict[str, np.ndarray]:
        """uint8 images: 'purity' [K, F] (0..1) and 'change' (normalised by the spread), rows = directions."""
        rows = [f"d{k}" for k in range(len(self.change))]
        method = self.settings.get("method", "")
        return {"purity": heatmap(self.purity, rows, self.factor_names, f"{method} purity", vmin=0.0, vmax=1.0),
                "change": heatmap(self.normalised, rows, self.factor_names, f"{method} change / prior spread", vmin=0.0)}


def _cell(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def json_safe(value):
    """NaN and infinities -> None in nested lists and dicts (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def distances(a: dict, b: dict) -> dict[str, np.ndarray]:
    """Per-factor distances between two read-outs (module docstring); NaN where not defined."""
    out = {}
    for name in world.FACTOR_NAMES:
        x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
        if name == "shape":
            out[name] = (x != y).astype(np.float64)
        elif name in world.PERIODIC_FACTORS:
            d = np.abs(x - y) % 1.0
            out[name] = np.minimum(d, 1.0 - d)
        else:
            out[name] = np.abs(x - y)
    same_polygon = (np.asarray(a["shape"]) == np.asarray(b["shape"])) & (np.asarray(a["shape"]) != 0)
    out["rotation"] = np.where(same_polygon, out["rotation"], np.nan)
    return out


_readout = jax.jit(reading.readout)


def _readouts(space, params, latents, batch_size: int, tol: float) -> dict[str, np.ndarray]:
    """Read-outs of the decoded latents [N, *shape], in jitted batches of one size (one compilation)."""
    decode = jax.jit(space.decode)
    parts = []
    for lo in range(0, len(latents), batch_size):
        batch = latents[lo: lo + batch_size]
        padded = jnp.concatenate([batch, jnp.repeat(batch[-1:], batch_size - len(batch), axis=0)])
        read = _readout(decode(params, padded), tol)  # one compiled read-out for every call of this size
        parts.append(jax.tree.map(lambda x, n=len(batch): np.asarray(x[:n]), read))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def ground_truth(space, params, directions, config: GroundTruthConfig | dict | None = None,
                 **overrides) -> GroundTruth:
    """Score `directions` (a `Directions`) in `space` (decoding to shapes images) against the factors."""
    if config is None:
        config = GroundTruthConfig()
    elif isinstance(config, dict):
        config = GroundTruthConfig.from_dict(config)
    config = dataclasses.replace(config, **overrides)
    n, k = config.num_samples, len(directions)
    latents = space.sample(jax.random.key(config.seed), n, params)
    steps = jnp.asarray([-config.distance, config.distance], jnp.float32)
    layers = None if directions.layers is None else jnp.asarray(directions.layers)
    walk = walks.WALKS[config.walk]
    ends = jax.jit(jax.vmap(lambda z: walks.sweep(walk, space, z, jnp.asarray(directions.vectors), steps, layers)))(
        latents)                                                         # [n, K, 2, *shape]
    start = _readouts(space, params, latents, config.batch_size, config.valid_tol)
    end = _readouts(space, params, ends.reshape((-1,) + tuple(space.shape)), config.batch_size, config.valid_tol)
    end = {name: v.reshape(n, k, 2) for name, v in end.items()}
    start_b = {name: v[:, None, None] for name, v in start.items()}

    counted = start_b["valid"] & end["valid"]                           # [n, K, 2]
    moved = distances(start_b, end)
    change = np.stack([_masked_mean(moved[name], counted, axis=(0, 2)) for name in world.FACTOR_NAMES], axis=1)

    i, j = np.triu_indices(n, 1)
    pairs = start["valid"][i] & start["valid"][j]
    apart = distances({name: v[i] for name, v in start.items()}, {name: v[j] for name, v in start.items()})
    spread = np.asarray([_masked_mean(apart[name], pairs, axis=0) for name in world.FACTOR_NAMES])

    purity, best, best_purity = purities(change, spread, config.min_change)
    return GroundTruth(
        change=change, spread=spread, purity=purity, best=best, best_purity=best_purity,
        num_pure=int(np.sum(best_purity >= config.threshold)),
        valid=counted.mean(axis=(0, 2)), valid_fraction=float(counted.mean()),
        factor_names=world.FACTOR_NAMES,
        settings={**config.to_dict(), "num_directions": k, "method": directions.method, "space": directions.space})


def purities(change: np.ndarray, spread: np.ndarray, min_change: float):
    """(purity [K, F], best direction [F] (-1: none), its purity [F]) from changes [K, F] and spreads [F]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.nan_to_num(change / np.where(spread > 0, spread, np.nan))
    total = normalised.sum(axis=1, keepdims=True)
    purity = normalised / np.where(total > 0, total, 1.0)
    candidates = np.where(normalised >= min_change, purity, -1.0)
    best = np.argmax(candidates, axis=0)
    found = candidates[best, np.arange(change.shape[1])] >= 0
    return purity, np.where(found, best, -1), np.where(found, purity[best, np.arange(change.shape[1])], 0.0)


def comparison(results: dict[str, GroundTruth], seconds: dict[str, float] | None = None):
    """(header, rows) comparing methods: the best direction's purity per factor, how many factors
    reach the threshold, the valid fraction and (if given) the method's wall time (None: '-')."""
    first = next(iter(results.values()))
    header = ["method", *first.factor_names, f"purity >= {first.settings['threshold']:g}", "valid"]
    header += ["seconds"] if seconds is not None else []
    rows = []
    for method, result in results.items():
        row = [method, *(round(float(p), 3) for p in result.best_purity), f"{result.num_pure}/{len(result.factor_names)}",
               round(result.valid_fraction, 3)]
        if seconds is not None:
            row.append("-" if seconds[method] is None else round(float(seconds[method]), 2))
        rows.append(row)
    return header, rows


def _masked_mean(values: np.ndarray, mask: np.ndarray, axis) -> np.ndarray:
    """Mean of `values` where `mask` holds and the value is defined (not NaN); NaN where nothing counts."""
    use = mask & ~np.isnan(values)
    total = np.sum(np.where(use, values, 0.0), axis=axis)
    count = np.sum(use, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
