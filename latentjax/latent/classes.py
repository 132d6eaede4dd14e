"""Class vectors of conditional generators: one-hot blocks, enumerated by an integer class index."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def category_blocks(generator) -> tuple[int, ...]:
    """Sizes of the one-hot blocks of a generator's class vector: a valid vector has one 1 per block.

    One block of `c_dim` (StyleGAN2, BigGAN, PGGANs without a recorded layout), or one block per
    attribute for PGGANs with categories (`metadata["categories"] = [[attribute, [values]], ...]`).
    """
    c_dim = getattr(generator, "c_dim", 0) or 0
    layout = getattr(generator, "metadata", {}).get("categories") if c_dim else None
    if layout:
        blocks = tuple(len(values) for _, values in layout)
        if sum(blocks) != c_dim:
            raise ValueError(f"metadata['categories'] has blocks {list(blocks)} summing to {sum(blocks)}, but the "
                             f"generator's c_dim is {c_dim}")
        return blocks
    return (c_dim,) if c_dim else ()


def num_classes(generator) -> int:
    """How many distinct class vectors a generator takes: the product of its block sizes (0: unconditional)."""
    return int(np.prod(category_blocks(generator))) if getattr(generator, "c_dim", 0) else 0


def class_vectors(generator, index):
    """Class indices [N] in [0, num_classes) -> class vectors [N, c_dim]. Jittable.

    With several category blocks, an index enumerates their combinations like `itertools.product`
    over the attributes in order (the last attribute varies fastest): index = sum_j value_j *
    prod(sizes after j), and the vector is the one-hot of each value_j, concatenated.
    """
    blocks = category_blocks(generator)
    index = jnp.asarray(index)
    strides = np.cumprod((1,) + blocks[:0:-1])[::-1]
    return jnp.concatenate([jax.nn.one_hot((index // int(stride)) % size, size, dtype=jnp.float32)
                            for size, stride in zip(blocks, strides)], axis=-1)


def sample_classes(generator, key, n: int):
    """Random valid class vectors [n, c_dim]: every class (each attribute's values, independently) equally likely."""
    return class_vectors(generator, jax.random.randint(key, (n,), 0, num_classes(generator)))


def class_indices(generator, vectors) -> np.ndarray:
    """Class vectors [N, c_dim] -> their class indices [N] (the inverse of `class_vectors`); a ValueError
    for vectors that are not class vectors (such as mixtures of classes)."""
    blocks = category_blocks(generator)
    c = np.asarray(vectors, np.float32)
    strides = np.cumprod((1,) + blocks[:0:-1])[::-1]
    offsets = np.cumsum((0,) + blocks)
    index = sum(np.argmax(c[..., lo:hi], axis=-1) * int(stride)
                for lo, hi, stride in zip(offsets[:-1], offsets[1:], strides))
    index = np.asarray(index, np.int64)
    if c.shape[-1:] != (sum(blocks),) or not np.array_equal(np.asarray(class_vectors(generator, index)), c):
        raise ValueError(f"expected class vectors (one-hot blocks of sizes {list(blocks)}), got an array of shape "
                         f"{c.shape} with other values")
    return index
