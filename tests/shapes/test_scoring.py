"""Ground-truth scores of directions on the shapes world: a space whose latent is the factor vector
itself has perfectly pure coordinate directions, mixed and random directions are not, a near-null
walk finds nothing, broken directions score 0, steps are matched to one image change; results are
deterministic; heatmaps colour each cell by its value; `configs/shapes.py` runs every method."""

import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import latentjax as lj
from latentjax.programs.flags import parse_config_flags
from latentjax import shapes
from latentjax.directions import Directions
from latentjax.programs.discover import MultiRun, describe, discover
from latentjax.shapes.scoring import (GroundTruthConfig, distances, ground_truth, purities, random_baseline,
                                     world_spread)
from latentjax.models import StyleGAN2, StyleGAN2Config
from latentjax.nn.recognizer import Recognizer, RecognizerConfig, save_recognizer
from latentjax.viz.heatmap import colours, heatmap

from support import REPO

CONFIGS = REPO / "configs"
CONTINUOUS = shapes.FACTOR_NAMES[1:]  # x, y, scale, rotation, hue, background


class FactorSpace:
    """A LatentSpace-like object whose latent is the continuous factor vector, drawn as a square by
    `shapes.render` (squares, so that rotation is defined). Latents stay inside [0.3, 0.7]."""

    name, shape, direction_dim, num_layers, spec = "factors", (len(CONTINUOUS),), len(CONTINUOUS), None, {"name": "factors"}

    def embed(self, direction, layers=None):
        return direction

    def sample(self, key, n, params=None):
        return jax.random.uniform(key, (n, len(CONTINUOUS)), minval=0.3, maxval=0.7)

    def pool(self, latent):
        return latent

    def decode(self, params, latent):
        factors = {name: latent[:, i] for i, name in enumerate(CONTINUOUS)}
        return shapes.render({**factors, "shape": jnp.ones(latent.shape[:1], jnp.int32)}, 32).images


def _directions(vectors, method):
    return Directions(vectors, np.ones(len(vectors)), {"name": "factors"}, method)


def test_coordinate_directions_are_pure_and_mixed_ones_are_not():
    space, settings = FactorSpace(), GroundTruthConfig(num_samples=12, distance=0.12, batch_size=32)
    axes = ground_truth(space, None, _directions(np.eye(6), "axes"), settings)
    assert axes.valid_fraction == 1.0 and axes.num_pure == 6
    np.testing.assert_array_equal(axes.best, [-1, 0, 1, 2, 3, 4, 5])  # shape never changes: no direction for it
    assert np.all(axes.best_purity[1:] > 0.9), axes.table()
    assert axes.change[0, 0] == 0 and np.allclose(axes.steps, 0.12)
    np.testing.assert_allclose(axes.spread, world_spread(), rtol=0)  # normalised by the world's own spread
    assert np.isfinite(axes.mig) and set(axes.dci) == {"disentanglement", "completeness", "informativeness"}
    # the same factors, each direction a mix of all of them
    mixing, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    mixed = ground_truth(space, None, _directions(mixing.T, "mixed"), settings)
    assert mixed.num_pure == 0 and np.max(mixed.best_purity) < 0.7, mixed.table()
    # a 45-degree mix of x and y splits the change between them
    diagonal = ground_truth(space, None, _directions(np.array([[1, 1, 0, 0, 0, 0]]) / np.sqrt(2), "xy"), settings)
    np.testing.assert_allclose(diagonal.purity[0, 1:3], [0.5, 0.5], atol=0.06)


def test_distances_are_circular_and_skip_undefined_rotation():
    a = {"shape": np.array([1, 1, 0, 2]), "x": np.array([0.1, 0.5, 0.2, 0.0]), "y": np.zeros(4), "scale": np.zeros(4),
         "rotation": np.array([0.95, 0.1, 0.3, 0.2]), "hue": np.array([0.9, 0.1, 0.0, 0.5]), "background": np.zeros(4)}
    b = {**a, "shape": np.array([1, 2, 0, 2]), "x": np.array([0.3, 0.5, 0.2, 0.0]),
         "rotation": np.array([0.05, 0.2, 0.6, 0.7]), "hue": np.array([0.1, 0.1, 0.6, 0.0])}
    d = distances(a, b)
    np.testing.assert_allclose(d["x"], [0.2, 0, 0, 0])
    np.testing.assert_allclose(d["hue"], [0.2, 0, 0.4, 0.5])
    np.testing.assert_array_equal(d["shape"], [0, 1, 0, 0])
    np.testing.assert_allclose(d["rotation"], [0.1, np.nan, np.nan, 0.5])  # shape changed / circle: undefined


def test_purity_shares_the_normalised_change_and_broken_directions_score_zero():
    normalised = np.array([[0.5, 0.5, 0.0], [0.05, 0.005, 0.0]])  # factor 2 never moves; direction 1 barely moves
    purity, best, best_purity = purities(normalised, min_change=0.1)
    np.testing.assert_allclose(purity[0], [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(best, [0, 0, -1])  # direction 1 is purer in factor 0 but moves it < min_change
    np.testing.assert_allclose(best_purity, [0.5, 0.5, 0.0])
    pure = np.array([[1.0, 0.0], [0.6, 0.6]])
    purity, best, best_purity = purities(pure, min_change=0.1, broken=np.array([True, False]))
    np.testing.assert_array_equal(purity[0], [0, 0])  # it breaks images: scored 0, never a factor's best
    np.testing.assert_array_equal(best, [1, 1])


def test_planted_direction_is_found_and_random_and_null_walks_find_nothing():
    space = FactorSpace()
    settings = GroundTruthConfig(num_samples=16, batch_size=64, image_change=0.04, max_distance=1.0,
                                 search_samples=8, baseline_seeds=2)
    planted = ground_truth(space, None, _directions(np.eye(6)[[0, 4]], "planted"), settings)  # x and hue
    assert planted.best[1] == 0 and planted.best[5] == 1 and planted.best_purity[[1, 5]].min() > 0.9
    np.testing.assert_allclose(planted.image_change, 0.04)  # each walked to the same image change
    assert planted.steps[0] != planted.steps[1] and np.all(planted.valid > 0.9), planted.steps
    for baseline in random_baseline(space, None, _directions(np.eye(6)[:3], "planted"), settings):
        assert baseline.settings["method"] == "random" and baseline.valid_fraction > 0.9
        assert baseline.num_pure == 0 and baseline.best_purity.max() < 0.7, baseline.table()
    null = ground_truth(space, None, _directions(np.eye(6)[[0, 4]], "null"), settings, image_change=1e-4)
    assert null.num_pure == 0 and np.all(null.best == -1), null.table()  # images barely change: nothing found


def test_random_stylegan2_scores_are_deterministic(tmp_path):
    config = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channels=(16, 16, 16),
                             mapping_layers=1)
    G = StyleGAN2.init(config, jax.random.key(3))
    space = lj.latent_space(G, "w+", fit_samples=500)
    d = lj.directions.sefa(space, k=3, layers="0-2")
    settings = GroundTruthConfig(num_samples=6, batch_size=8, valid_tol=float("inf"))
    first, again = ground_truth(space, G.params, d, settings), ground_truth(space, G.params, d, settings)
    for name in ("change", "spread", "purity", "valid"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.change.shape == first.purity.shape == (3, 7) and first.valid.shape == (3,)
    assert first.change.dtype == np.float64 and first.best.shape == (7,) and 0 <= first.valid_fraction <= 1
    assert first.factor_names == shapes.FACTOR_NAMES and first.settings["method"] == "sefa"
    json.dumps(first.to_dict(), allow_nan=False)
    table = first.table()
    assert table.header == ("direction", *shapes.FACTOR_NAMES, "valid", "step")
    assert len(table.rows) == 3 + 1 and table.rows[-1][0] == "best purity"  # a row per direction, then the best
    assert all(len(row) == len(table.header) for row in table.rows) and "MIG" in table.caption
    assert {k: v.shape[2] for k, v in first.heatmaps().items()} == {"purity": 3, "change": 3}


def test_heatmap_colours_each_cell_by_its_value():
    matrix = np.array([[0.0, 1.0], [0.5, np.nan]])
    image = heatmap(matrix, ["a", "b"], ["x", "y"], cell=30, vmin=0.0, vmax=1.0)
    expected = colours(matrix, 0.0, 1.0)
    assert tuple(expected[1, 1]) == (200, 200, 200) and not np.array_equal(expected[0, 0], expected[0, 1])
    # find the cells: the top-left cell is the first pixel of the darkest colour
    top, left = np.argwhere(np.all(image == expected[0, 0], axis=-1))[0]
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(image[top + i * 30 + 2, left + j * 30 + 26], expected[i, j])
    with pytest.raises(ValueError, match="2 row and 3 column labels"):
        heatmap(matrix, ["a", "b"], ["x", "y", "z"])


def _config(arg):
    spec = importlib.util.spec_from_file_location("shapes_config", CONFIGS / "shapes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.mark.slow
def test_shapes_config_runs_every_method_into_one_report(tmp_path):
    every = {"sefa", "ganspace", "jacobian", "voynov", "dplase", "interfacegan", "linear_semantics", "ganalyze",
             "continuous_factors"}
    assert _config(None).generator == "builtin:shapes" and set(_config(None).methods) == every
    with pytest.raises(ValueError, match="unknown variant"):
        _config("huge")
    config = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channels=(16, 16, 16),
                             mapping_layers=1)
    generator = lj.save_generator(StyleGAN2.init(config, jax.random.key(2)), tmp_path / "g")
    assessor = save_recognizer(Recognizer.init(RecognizerConfig(16, 3, ("x", "y", "hue_cos"), (1, 1, 1), width=4, depth=2),
                                               jax.random.key(3)), tmp_path / "assessor")
    out = tmp_path / "out"
    values = parse_config_flags(["--config", f"{CONFIGS / 'shapes.py'}:smoke", f"--config.generator={generator}",
                                 "--config.ground_truth.num_samples=4", "--workdir", str(out),
                                 # a random generator draws no clean renders: its read-out is scored at any error
                                 "--config.methods.interfacegan.scorer=readout:1e9",
                                 "--config.methods.linear_semantics.scorer=readout:1e9",
                                 f"--config.methods.ganalyze.scorer=assessor:{assessor}"], "discover")
    run = discover(values.config, values.workdir, progress=False)
    assert isinstance(run, MultiRun) and set(run.directions) == every
    np.testing.assert_array_equal(Directions.load(out / "sefa" / "directions.npz").vectors,
                                  lj.directions.sefa(lj.load_generator(generator), k=3).vectors)
    for method in run.directions:
        files = {p.name for p in (out / method).iterdir()}
        assert {"directions.npz", "walk_seed0.png", "direction02.gif", "purity.png", "change.png",
                "summary.json"} <= files and "report.html" not in files
        assert np.asarray(Image.open(out / method / "purity.png")).shape[2] == 3
        assert ("train" in files) == (method in ("voynov", "dplase", "ganalyze"))  # learned: kept to resume
    report = (out / "report.html").read_text()
    assert report.count("<h2>") == 10 and all(f"{m} directions in w+" in report for m in run.directions)
    # per method: 2 heatmaps, 1 grid, 3 GIFs; GANalyze also its score-against-alpha plot and table
    assert report.count('<img src="data:') == 9 * (2 + 1 + 3) + 1 and "mean score on held-out latents" in report
    assert "mean score on held-out latents against alpha" in (out / "ground_truth.md").read_text()
    scores = json.loads((out / "ground_truth.json").read_text())
    assert set(scores) == set(run.directions) | {"baselines"} and scores["sefa"]["settings"]["num_samples"] == 4
    assert len(run.baselines) == 1 and len(scores["baselines"]) == 1  # every method has 3 directions in w+
    text = describe(run, out)
    assert "| sefa |" in text and "| random (3 in w+, mean of 1) |" in text and f"report: {out / 'report.html'}" in text
