"""How well latent directions of a shapes generator line up with the world's true factors.

Each direction is walked from prior samples to -step and +step, the step matched per direction so
that the image changes by `image_change` on average, and the start and end images are read back
(`latentjax.shapes.reading`). Each factor's change (less the read-out's noise floor, over the
world's spread of the factor) gives `purity[k, f]`, the share of direction k's change that goes to
factor f. A direction with too few valid pairs (`min_valid`: it breaks images) scores 0.
`random_baseline` scores random unit directions the same way.
Details: docs/shapes.md#latentjaxshapesscoring
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from latentjax import walks
from latentjax.config import ConfigMixin, configure
from latentjax.latent import compiled_decode
from latentjax.metrics.disentanglement import dci, mig
from latentjax.shapes import reading, world
from latentjax.sharding import batched_map
from latentjax.viz.heatmap import heatmap
from latentjax.viz.report import Table


@dataclasses.dataclass(frozen=True)
class GroundTruthConfig(ConfigMixin):
    num_samples: int = 64       # start latents
    image_change: float = 0.1   # matched steps: mean |pixel change| each walk end reaches
    distance: float = 0.0       # > 0: walk every direction by this fixed step instead
    max_distance: float = 30.0  # the step search's upper bound (in the space's units)
    search_samples: int = 16    # start latents the step search uses
    walk: str = "linear"        # a `latentjax.walks.WALKS` name
    batch_size: int = 64        # images decoded and read out per call
    threshold: float = 0.8      # purity that counts a factor as found
    min_change: float = 0.1     # normalised change a direction needs to be a factor's best
    min_valid: float = 0.5      # share of counted pairs below which a direction scores 0
    null_fraction: float = 0.05  # the noise-floor walk's step, as a fraction of the matched step
    baseline_seeds: int = 3     # sets of random unit directions in `random_baseline`
    num_bins: int = 20          # MIG's bins for codes and continuous factors
    valid_tol: float = reading.VALID_TOL  # rerender error below which an image counts
    seed: int = 0

    def __post_init__(self):
        if self.num_samples < 2 or self.batch_size < 1 or self.search_samples < 1 or self.baseline_seeds < 0:
            raise ValueError(f"num_samples must be >= 2, batch_size and search_samples >= 1, baseline_seeds >= 0: "
                             f"{self}")
        if not (self.distance > 0 or self.image_change > 0) or self.distance < 0 or not self.max_distance > 0:
            raise ValueError(f"image_change (matched steps) or distance (a fixed step) must be positive, and "
                             f"max_distance too; got {self.image_change}, {self.distance}, {self.max_distance}")
        if not 0 <= self.min_valid <= 1 or not 0 <= self.null_fraction < 1 or self.num_bins < 2:
            raise ValueError(f"min_valid must be in [0, 1], null_fraction in [0, 1), num_bins >= 2: {self}")
        if self.walk not in walks.WALKS:
            raise ValueError(f"walk must be one of {sorted(walks.WALKS)}, got {self.walk!r}")


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """Scores of K directions against the factors (`factor_names`, all of `world.FACTOR_NAMES`).

    `change` [K, F] mean factor change over counted pairs; `floor` [K, F] the same at the
    noise-floor step; `spread` [F] the world's spread; `purity` [K, F]; `best` [F] the best
    direction per factor (-1: none qualifies); `best_purity` [F]; `num_pure`; `valid` [K] share of
    counted pairs per direction and `valid_fraction` over all; `steps` [K] the walk step used;
    `image_change` [K] the mean pixel change it gave; `mig` and `dci` of the directions'
    coordinates against the factors read from the valid start images.
    """

    change: np.ndarray
    floor: np.ndarray
    spread: np.ndarray
    purity: np.ndarray
    best: np.ndarray
    best_purity: np.ndarray
    num_pure: int
    valid: np.ndarray
    valid_fraction: float
    steps: np.ndarray
    image_change: np.ndarray
    mig: float
    dci: dict
    factor_names: tuple[str, ...]
    settings: dict

    @property
    def normalised(self) -> np.ndarray:
        """[K, F] change above the noise floor, divided by the world's spread."""
        return normalise(self.change, self.floor, self.spread)

    def to_dict(self) -> dict:
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dataclasses.asdict(self).items()}
        return json_safe(out)

    def table(self) -> Table:
        """One row per direction (factor change / world spread, valid share, step), then the best
        direction's purity per factor; the caption counts the factors found and gives MIG and DCI."""
        rows = [(k, *map(_cell, self.normalised[k]), f"{self.valid[k]:.2f}", f"{self.steps[k]:.3g}")
                for k in range(len(self.change))]
        best = ["-" if b < 0 else f"{p:.2f} (d{b})" for b, p in zip(self.best, self.best_purity)]
        rows.append(("best purity", *best, f"{self.valid_fraction:.2f}", ""))
        caption = (f"{self.num_pure} of {len(self.factor_names)} factors have a direction with purity >= "
                   f"{self.settings['threshold']:g}; MIG {self.mig:.3f}, DCI disentanglement "
                   f"{self.dci['disentanglement']:.3f}. Changes are divided by the world's spread.")
        return Table(caption, ("direction", *self.factor_names, "valid", "step"), rows)

    def heatmaps(self) -> dict[str, np.ndarray]:
        """uint8 images: 'purity' [K, F] (0..1) and 'change' (normalised), rows = directions."""
        rows = [f"d{k}" for k in range(len(self.change))]
        method = self.settings.get("method", "")
        return {"purity": heatmap(self.purity, rows, self.factor_names, f"{method} purity", vmin=0.0, vmax=1.0),
                "change": heatmap(self.normalised, rows, self.factor_names, f"{method} change / world spread",
                                  vmin=0.0)}


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
    """Per-factor `reading.factor_distance` between two read-outs (float64); rotation NaN unless both
    show the same polygon (a circle has no rotation; a square's and a triangle's are not comparable)."""
    out = {name: np.asarray(reading.factor_distance(name, a[name], b[name]), np.float64) for name in world.FACTOR_NAMES}
    same_polygon = (np.asarray(a["shape"]) == np.asarray(b["shape"])) & (np.asarray(a["shape"]) != 0)
    out["rotation"] = np.where(same_polygon, out["rotation"], np.nan)
    return out


def world_spread(num_pairs: int = 100_000, seed: int = 0) -> np.ndarray:
    """[F] mean `distances` between two independent draws of the world's factors (rotation: over
    pairs of the same polygon), from `num_pairs` pairs: the change a jump to a new sample makes."""
    a, b = (jax.tree.map(np.asarray, world.sample_factors(jax.random.key(seed + i), num_pairs)) for i in (0, 1))
    apart = distances(a, b)
    return np.asarray([np.nanmean(apart[name]) for name in world.FACTOR_NAMES])


def normalise(change: np.ndarray, floor: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """max(change - floor, 0) / spread; 0 where a factor never changes."""
    above = np.maximum(np.nan_to_num(change) - np.nan_to_num(floor), 0.0)
    return above / spread


@functools.partial(jax.jit, static_argnums=(0, 1))
def _walk_ends(space, walk, vectors, layers, latents, steps):
    """(latents [n, *shape], steps [K]) -> ends [n, K, 2, *shape]: each latent walked along each
    direction k to -steps[k] and +steps[k]. Compiled once per space, walk and shapes: the
    directions are arguments, so every method and baseline scored in a space shares the program."""
    signs = jnp.asarray([-1.0, 1.0], jnp.float32)

    def one(latent, steps):
        def along(v, m, t):
            return jax.vmap(lambda s: walk(space, latent, v, s * t, m))(signs)
        return jax.vmap(along, (0, None if layers is None else 0, 0))(vectors, layers, steps)

    return jax.vmap(one, (0, None))(latents, steps)


def _walker(space, walk, vectors, layers):
    """`_walk_ends` for these directions: a function (latents, steps) -> ends."""
    return functools.partial(_walk_ends, space, walk, vectors, layers)


def _flat(latents, space) -> np.ndarray:
    return np.asarray(latents).reshape((-1,) + tuple(space.shape))


def matched_steps(decode, walker, latents, num_directions: int, config: GroundTruthConfig):
    """([K] the step at which each direction's walk changes the image by `config.image_change` on
    average over `latents` (log-linear interpolation on a geometric grid up to `max_distance`; the
    largest step where it never gets there), [K] the change reached). `decode` maps flat latents to
    images in padded batches, `walker` is `_walker`'s function."""
    grid = np.geomspace(config.max_distance / 1e4, config.max_distance, 17).astype(np.float32)
    start = decode(np.asarray(latents))
    changes = []
    for t in grid:
        ends = walker(latents, jnp.full((num_directions,), t, jnp.float32))
        images = decode(_flat(ends, decode.space)).reshape((len(latents), num_directions, 2) + start.shape[1:])
        changes.append(np.mean(np.abs(images - start[:, None, None]), axis=(0, 2, 3, 4, 5)))
    changes = np.stack(changes, axis=1)  # [K, grid]
    steps, reached = np.empty(num_directions, np.float32), np.empty(num_directions)
    for i, row in enumerate(changes):
        above = np.nonzero(row >= config.image_change)[0]
        if not len(above) or above[0] == 0:
            j = len(row) - 1 if not len(above) else 0
            steps[i], reached[i] = grid[j], row[j]
            continue
        j = above[0]
        frac = (config.image_change - row[j - 1]) / max(row[j] - row[j - 1], 1e-12)
        steps[i] = np.exp(np.log(grid[j - 1]) + frac * (np.log(grid[j]) - np.log(grid[j - 1])))
        reached[i] = config.image_change
    return steps, reached


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _decode_read(space, readout, tol, params, latents):
    """The read-out of decoded latents; params are an argument, so calls for other directions reuse the program."""
    return readout(space.decode(params, latents), tol)


class _Decoder:
    """Flat latents -> images (and read-outs), in padded, sharded batches of one compiled size."""

    def __init__(self, space, params, batch_size: int, tol: float, readout):
        self.space, self.batch_size = space, batch_size
        self._images = functools.partial(compiled_decode, space, params)
        self._read = functools.partial(_decode_read, space, readout, float(tol), params)

    def __call__(self, latents) -> np.ndarray:
        return batched_map(self._images, latents, self.batch_size)

    def read(self, latents) -> dict:
        return batched_map(self._read, latents, self.batch_size)


def _factor_matrix(read: dict, valid: np.ndarray, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(discrete factors [N, F] for MIG, factor values [N, F'] for DCI, periodic ones as cos and sin)."""
    discrete, values = [], []
    for name in world.FACTOR_NAMES:
        v = np.asarray(read[name], np.float64)[valid]
        if name == "shape":
            discrete.append(v.astype(int))
            values.append(v)
        elif name in world.PERIODIC_FACTORS:
            discrete.append(np.minimum((v % 1.0 * num_bins).astype(int), num_bins - 1))
            values += [np.cos(2 * np.pi * v), np.sin(2 * np.pi * v)]
        else:
            discrete.append(np.minimum((np.clip(v, 0, 1) * num_bins).astype(int), num_bins - 1))
            values.append(v)
    return np.stack(discrete, axis=1), np.stack(values, axis=1)


def ground_truth(space, params, directions, config: GroundTruthConfig | dict | None = None, *, readout=None,
                 **overrides) -> GroundTruth:
    """Score `directions` (a `Directions`) in `space` (decoding to shapes images) against the factors.

    `readout(images, tol)` (default: the shapes read-out) returns the factors and `valid`.
    """
    config = configure(GroundTruthConfig, config, overrides)
    decoder = _Decoder(space, params, config.batch_size, config.valid_tol,
                       reading.readout if readout is None else readout)
    n, k = config.num_samples, len(directions)
    latents = space.sample(jax.random.key(config.seed), n, params)
    layers = None if directions.layers is None else jnp.asarray(directions.layers)
    walker = _walker(space, walks.WALKS[config.walk], jnp.asarray(directions.vectors), layers)
    if config.distance > 0:
        steps, reached = np.full(k, config.distance, np.float32), np.full(k, np.nan)
    else:
        steps, reached = matched_steps(decoder, walker, latents[:config.search_samples], k, config)
    start = decoder.read(np.asarray(latents))
    start_b = {name: v[:, None, None] for name, v in start.items()}

    def factor_changes(scale):
        end = decoder.read(_flat(walker(latents, jnp.asarray(steps * scale, jnp.float32)), space))
        end = {name: v.reshape(n, k, 2) for name, v in end.items()}
        counted = start_b["valid"] & end["valid"]                       # [n, K, 2]
        moved = distances(start_b, end)
        return np.stack([_masked_mean(moved[name], counted, axis=(0, 2)) for name in world.FACTOR_NAMES], 1), counted

    change, counted = factor_changes(1.0)
    floor = factor_changes(config.null_fraction)[0] if config.null_fraction > 0 else np.zeros_like(change)
    spread = world_spread()
    valid = counted.mean(axis=(0, 2))
    broken = valid < config.min_valid
    purity, best, best_purity = purities(normalise(change, floor, spread), config.min_change, broken)

    ok = np.asarray(start["valid"], bool)
    codes = np.asarray(space.pool(latents)) @ np.asarray(directions.vectors).T   # [n, K] direction coordinates
    mig_value, dci_value = float("nan"), {"disentanglement": float("nan"), "completeness": float("nan"),
                                          "informativeness": float("nan")}
    if ok.sum() >= 4 and k >= 2:
        discrete, values = _factor_matrix(start, ok, config.num_bins)
        mig_value = mig(codes[ok], discrete, config.num_bins)
        dci_value = dci(codes[ok], values, importance="ridge")
    return GroundTruth(
        change=change, floor=floor, spread=spread, purity=purity, best=best, best_purity=best_purity,
        num_pure=int(np.sum(best_purity >= config.threshold)), valid=valid, valid_fraction=float(counted.mean()),
        steps=np.asarray(steps, np.float64), image_change=np.asarray(reached, np.float64), mig=mig_value,
        dci=dci_value, factor_names=world.FACTOR_NAMES,
        settings={**config.to_dict(), "num_directions": k, "method": directions.method, "space": directions.space})


def random_directions(space, directions, seed: int):
    """K random unit directions in `space` with the same layer masks as `directions` (method 'random')."""
    vectors = np.asarray(jax.random.normal(jax.random.key(seed), (len(directions), directions.dim)), np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return dataclasses.replace(directions, vectors=vectors, scores=np.zeros(len(directions)), method="random",
                               settings={"seed": seed}, channels=None)


def random_baseline(space, params, directions, config: GroundTruthConfig | dict | None = None, *, readout=None,
                    **overrides) -> list[GroundTruth]:
    """`ground_truth` of `config.baseline_seeds` sets of random unit directions shaped like `directions`."""
    config = configure(GroundTruthConfig, config, overrides)
    return [ground_truth(space, params, random_directions(space, directions, 1000 + s), config, readout=readout)
            for s in range(config.baseline_seeds)]


def purities(normalised: np.ndarray, min_change: float, broken: np.ndarray | None = None):
    """(purity [K, F], best direction [F] (-1: none), its purity [F]) from normalised changes [K, F];
    `broken` [K] directions (too few valid pairs) get purity 0 and are never a factor's best."""
    normalised = np.nan_to_num(normalised)
    total = normalised.sum(axis=1, keepdims=True)
    purity = normalised / np.where(total > 0, total, 1.0)
    if broken is not None:
        purity = np.where(np.asarray(broken)[:, None], 0.0, purity)
    candidates = np.where(normalised >= min_change, purity, -1.0)
    if broken is not None:
        candidates = np.where(np.asarray(broken)[:, None], -1.0, candidates)
    best = np.argmax(candidates, axis=0)
    found = candidates[best, np.arange(normalised.shape[1])] >= 0
    return purity, np.where(found, best, -1), np.where(found, purity[best, np.arange(normalised.shape[1])], 0.0)


def comparison(results: dict[str, GroundTruth], seconds: dict[str, float] | None = None,
               baselines: dict[str, list[GroundTruth]] | None = None):
    """(header, rows) comparing methods: the best direction's purity per factor, how many factors
    reach the threshold, MIG, DCI disentanglement, the valid share and (if given) the method's wall
    time (None: '-'). `baselines` (label -> `random_baseline` results) add a row each: the mean over
    seeds (factors found: mean count)."""
    first = next(iter(results.values()))
    header = ["method", *first.factor_names, f"purity >= {first.settings['threshold']:g}", "MIG", "DCI-D", "valid"]
    header += ["seconds"] if seconds is not None else []

    def row(name, best_purity, found, mig_value, dci_d, valid, time):
        cells = [name, *(round(float(p), 3) for p in best_purity), found, round(float(mig_value), 3),
                 round(float(dci_d), 3), round(float(valid), 3)]
        return cells + ([("-" if time is None else round(float(time), 2))] if seconds is not None else [])

    rows = [row(method, r.best_purity, f"{r.num_pure}/{len(r.factor_names)}", r.mig, r.dci["disentanglement"],
                r.valid_fraction, None if seconds is None else seconds[method]) for method, r in results.items()]
    for label, runs in (baselines or {}).items():
        rows.append(row(label, np.mean([r.best_purity for r in runs], axis=0),
                        f"{np.mean([r.num_pure for r in runs]):.1f}/{len(first.factor_names)}",
                        np.mean([r.mig for r in runs]), np.mean([r.dci["disentanglement"] for r in runs]),
                        np.mean([r.valid_fraction for r in runs]), None))
    return header, rows


def _masked_mean(values: np.ndarray, mask: np.ndarray, axis) -> np.ndarray:
    """Mean of `values` where `mask` holds and the value is defined (not NaN); NaN where nothing counts."""
    use = mask & ~np.isnan(values)
    total = np.sum(np.where(use, values, 0.0), axis=axis)
    count = np.sum(use, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
