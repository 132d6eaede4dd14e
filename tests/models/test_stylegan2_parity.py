"""StyleGAN2 parity against outputs recorded from the reference implementations.

Every array recorded in a fixture's `_io.npz` is recomputed through the public API (an
unrecognised array name fails the test, so no recorded case is skipped) and compared at
relative L2 error below PARITY_RTOL. Fixture provenance: tests/fixtures/stylegan2/README.md.
"""

import json
import re

import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from support import FIXTURES, PARITY_RTOL, nchw, relative_error

SG2 = FIXTURES / "stylegan2"
NVIDIA_CASES = {  # fixture stem -> the checkpoint files that must all reproduce it
    "ada_s32": ["ada_s32.pt", "ada_s32_snapshot.pkl"],
    "ada_cond_s64": ["ada_cond_s64.pt"],
    "ada_gray_s16": ["ada_gray_s16.pt"],
    "sg3repo_s32": ["sg3repo_s32.pt"],
}
ROSINALITY_CASES = {"rosinality_s32": "rosinality_s32.pt", "rosinality_train_s64": "rosinality_train_s64.pt"}


def _psi(text: str) -> float:
    """'1' -> 1.0, '05' -> 0.5, '07' -> 0.7 (the fixtures' naming)."""
    return float(text) if len(text) == 1 else float(f"{text[0]}.{text[1:]}")


def _nvidia_expected(G, io):
    """Yield (name, ours, reference) for every array of an NVIDIA-style fixture."""
    p, z = G.params, jnp.asarray(io["z"])
    c = jnp.asarray(io["c"]) if io["c"].size else None
    features = G.features(p, G.mapping(p, z, c))
    for name in io.files:
        ref = io[name]
        if name in ("z", "c", "ws_given"):
            continue
        if m := re.fullmatch(r"ws_psi(\d+)(?:_cutoff(\d+))?", name):
            cutoff = int(m[2]) if m[2] else None
            ours = G.mapping(p, z, c, truncation_psi=_psi(m[1]), truncation_cutoff=cutoff)
        elif m := re.fullmatch(r"img_psi(\d+)(?:_cutoff(\d+))?_(const|none)", name):
            cutoff = int(m[2]) if m[2] else None
            ours = nchw(G.generate(p, z, c, truncation_psi=_psi(m[1]), truncation_cutoff=cutoff, noise_mode=m[3]))
        elif m := re.fullmatch(r"(feat|rgb)(\d+)_psi1_const", name):
            layer = f"b{m[2]}" if m[1] == "feat" else f"b{m[2]}.img"
            ours = nchw(features[layer][: len(ref)])
        elif name == "img_ws_given_const":
            ours = nchw(G.synthesis(p, jnp.asarray(io["ws_given"])))
        else:
            raise AssertionError(f"fixture array {name!r} has no recipe in this test")
        yield name, ours, ref


def _rosinality_layer(name: str) -> str:
    """rosinality feature names -> ours: conv1 and convs.{2k+1} end a block, convs.{2k} is conv0."""
    if m := re.fullmatch(r"feat(\d+)_trunc1", name):
        return f"b{m[1]}"
    if name == "feat_conv1":
        return "b4"
    if m := re.fullmatch(r"feat_convs(\d+)", name):
        i = int(m[1])
        return f"b{8 * 2 ** (i // 2)}" + (".conv0" if i % 2 == 0 else "")
    if m := re.fullmatch(r"rgb_(\d+)", name):
        return f"b{m[1]}.img"
    raise AssertionError(f"fixture array {name!r} has no recipe in this test")


def _rosinality_expected(G, io, inject_index):
    p, z = G.params, jnp.asarray(io["z"])
    ws = G.mapping(p, z)
    features = G.features(p, ws)
    for name in io.files:
        ref = io[name]
        if name in ("z", "z2", "wplus"):
            continue
        if name in ("w", "w2"):
            ours = G.mapping(p, jnp.asarray(io["z" + name[1:]]))[:, 0]
        elif name == "latent_avg":
            ours = p["mapping"]["w_avg"]
        elif m := re.fullmatch(r"(img|latent)_trunc(\d+)", name):
            latent = G.mapping(p, z, truncation_psi=_psi(m[2]))
            ours = latent if m[1] == "latent" else nchw(G.synthesis(p, latent))
        elif name == "img_wplus":
            ours = nchw(G.synthesis(p, jnp.asarray(io["wplus"])))
        elif name in ("latent_mix", "img_mix"):
            mixed = G.mix(ws, G.mapping(p, jnp.asarray(io["z2"])), inject_index)
            ours = mixed if name == "latent_mix" else nchw(G.synthesis(p, mixed))
        else:
            ours = nchw(features[_rosinality_layer(name)][: len(ref)])
        yield name, ours, ref


def _assert_parity(cases):
    errors = {name: relative_error(ours, ref) for name, ours, ref in cases}
    assert errors, "no arrays compared"
    worst = max(errors, key=errors.get)
    assert errors[worst] < PARITY_RTOL, f"relative errors above {PARITY_RTOL}: " + str(
        {k: f"{v:.2e}" for k, v in errors.items() if v >= PARITY_RTOL})


@pytest.mark.parametrize("stem,checkpoint", [(s, f) for s, files in NVIDIA_CASES.items() for f in files])
def test_nvidia_parity(stem, checkpoint):
    G = lj.load_generator(SG2 / checkpoint)
    _assert_parity(_nvidia_expected(G, np.load(SG2 / f"{stem}_io.npz")))


@pytest.mark.parametrize("stem", sorted(ROSINALITY_CASES))
def test_rosinality_parity(stem):
    G = lj.load_generator(SG2 / ROSINALITY_CASES[stem])
    inject_index = json.loads((SG2 / f"{stem}.json").read_text())["inject_index"]
    _assert_parity(_rosinality_expected(G, np.load(SG2 / f"{stem}_io.npz"), inject_index))


def test_conditional_fixture_exercises_clamp_and_class_mixtures():
    """Guard that the fixture keeps covering what it is for: active clamp, mixed class vectors."""
    G = lj.load_generator(SG2 / "ada_cond_s64.pt")
    io = np.load(SG2 / "ada_cond_s64_io.npz")
    assert G.config.conv_clamp == 1.0 and np.abs(io["feat8_psi1_const"]).max() == pytest.approx(1.0)
    assert (io["c"].max(axis=1) < 1).any()


def test_rosinality_training_checkpoint_estimates_w_avg():
    """Training checkpoints have no latent_avg: w_avg is the mean of mapped samples."""
    G = lj.load_generator(SG2 / "rosinality_train_s64.pt")
    assert "estimated" in G.metadata["w_avg"]
    z = np.random.default_rng(0).standard_normal((4096, G.z_dim)).astype(np.float32)
    mean_w = np.asarray(G.mapping(G.params, z)[:, 0]).mean(0)
    spread = np.asarray(G.mapping(G.params, z)[:, 0]).std(0).mean()
    assert np.abs(mean_w - G.params["mapping"]["w_avg"]).max() < 0.1 * spread
