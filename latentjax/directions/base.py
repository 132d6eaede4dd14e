"""`Directions`: K unit vectors in a latent space, with their scores and how they were found.

Saved as one `.npz`: arrays `vectors` [K, D], `scores` [K], optionally `layers` [K, num_layers]
(the `w+` layers each direction edits) and `channels` [K, C] (the feature channels of layer
`settings["layer"]` each direction's edit is restricted to), and `metadata`, a JSON string with the space spec, the
method and its settings. Loading needs no pickle.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from latentjax.latent import latent_space

FORMAT = "latentjax.directions"
UNIT_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class Directions:
    """K directions (unit rows of `vectors`), ordered by `scores` (higher first) by every unsupervised
    method; guided methods keep the order of the attributes they were asked for.

    `space` is the `LatentSpace.spec` they live in (rebuild it with `space_for(G)`); `layers` is a
    [K, num_layers] boolean mask for `w+` directions (None: all layers); `channels` is a [K, C]
    boolean mask of the channels of generator layer `settings["layer"]` that each edit may change
    (None: unrestricted; `latentjax.walks.restricted_decode` applies such an edit).
    Indexing and slicing (`d[0]`, `d[:3]`, `d[[2, 0]]`) return Directions.
    """

    vectors: np.ndarray
    scores: np.ndarray
    space: dict
    method: str
    settings: dict = dataclasses.field(default_factory=dict)
    layers: np.ndarray | None = None
    channels: np.ndarray | None = None

    def __post_init__(self):
        vectors = np.asarray(self.vectors, np.float32)
        scores = np.asarray(self.scores, np.float32)
        if vectors.ndim != 2 or scores.shape != (vectors.shape[0],):
            raise ValueError(f"Directions need vectors [K, D] and scores [K], got {vectors.shape} and {scores.shape}")
        norms = np.linalg.norm(vectors, axis=1)
        if not np.all(np.abs(norms - 1) < UNIT_TOLERANCE):
            raise ValueError(f"direction vectors must be unit rows; norms range {norms.min():.6g}..{norms.max():.6g}")
        layers = None if self.layers is None else np.asarray(self.layers, bool)
        if layers is not None and (layers.ndim != 2 or layers.shape[0] != vectors.shape[0]):
            raise ValueError(f"layers must be a [K={vectors.shape[0]}, num_layers] mask, got shape {layers.shape}")
        channels = None if self.channels is None else np.asarray(self.channels, bool)
        if channels is not None:
            if channels.ndim != 2 or channels.shape[0] != vectors.shape[0]:
                raise ValueError(f"channels must be a [K={vectors.shape[0]}, C] mask, got shape {channels.shape}")
            if not isinstance(self.settings.get("layer"), str):
                raise ValueError("directions with channel masks need settings['layer'], the generator layer they mask")
        if "name" not in self.space:
            raise ValueError(f"space must be a LatentSpace spec with a 'name', got {self.space!r}")
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "channels", channels)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def __getitem__(self, index) -> "Directions":
        index = [index] if isinstance(index, (int, np.integer)) else index
        pick = lambda mask: None if mask is None else mask[index]  # noqa: E731
        return dataclasses.replace(self, vectors=self.vectors[index], scores=self.scores[index],
                                   layers=pick(self.layers), channels=pick(self.channels))

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def space_for(self, generator):
        """The LatentSpace of `generator` these directions live in."""
        return latent_space(generator, **self.space)

    # --- files -------------------------------------------------------------------------------
    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "space": self.space, "method": self.method, "settings": self.settings}
        arrays = {"vectors": self.vectors, "scores": self.scores, "metadata": np.array(json.dumps(meta))}
        for name in ("layers", "channels"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "Directions":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            meta = json.loads(str(arrays["metadata"]))
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path}: not a directions file (npz with vectors, scores, metadata): {e}") from e
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: metadata format is {meta.get('format')!r}, expected {FORMAT!r}")
        return cls(arrays["vectors"], arrays["scores"], meta["space"], meta["method"], meta["settings"],
                   arrays.get("layers"), arrays.get("channels"))


# --- helpers shared by the methods --------------------------------------------------------------
def canonical_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip each row so that its largest-magnitude entry is positive (eigenvectors have no sign)."""
    vectors = np.asarray(vectors)
    pivot = vectors[np.arange(len(vectors)), np.argmax(np.abs(vectors), axis=1)]
    return vectors * np.where(pivot < 0, -1, 1)[:, None]


def top_eigenvectors(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k leading (eigenvalue, unit eigenvector rows) of a symmetric matrix, largest first."""
    if not 0 < k <= matrix.shape[0]:
        raise ValueError(f"k must be in [1, {matrix.shape[0]}], got {k}")
    values, vectors = np.linalg.eigh(np.asarray(matrix, np.float64))
    order = np.argsort(values)[::-1][:k]
    return values[order], canonical_signs(vectors[:, order].T)
