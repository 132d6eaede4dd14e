"""Pictures: walk grids put directions in rows and steps in columns with the original in the centre,
GIFs hold the frames, and the HTML report embeds every picture."""

import base64
import io
import re

import jax
import numpy as np
import pytest
from PIL import Image

import latentjax as lj
from latentjax.latent import latent_space
from latentjax.programs.walk import render, walk_images
from latentjax.viz import Section, Table, encode_gif, encode_png, report, walk_grid
from support import FIXTURES


def _coded_images(k, s, size=4):
    """[k, s, size, size, 3] uint8, cell (i, j) filled with the colour (10 i, 10 j, 200)."""
    images = np.zeros((k, s, size, size, 3), np.uint8)
    for i in range(k):
        for j in range(s):
            images[i, j] = (10 * i, 10 * j, 200)
    return images


def test_walk_grid_rows_are_directions_and_columns_are_steps():
    grid = walk_grid(_coded_images(3, 5), pad=1)
    assert grid.shape == (3 * 5 - 1, 5 * 5 - 1, 3)
    for i in range(3):
        for j in range(5):
            assert tuple(grid[i * 5 + 1, j * 5 + 1]) == (10 * i, 10 * j, 200)
    with pytest.raises(ValueError, match="directions, steps"):
        walk_grid(np.zeros((2, 4, 4, 3), np.uint8))


def test_gif_holds_the_frames_forth_and_back():
    frames = _coded_images(1, 4)[0]
    gif = Image.open(io.BytesIO(encode_gif(frames, duration_ms=50)))
    decoded = []
    for index in range(gif.n_frames):
        gif.seek(index)
        decoded.append(np.asarray(gif.convert("RGB")))
    assert len(decoded) == 4 + 2  # 0 1 2 3 2 1, then it loops
    for got, want in zip(decoded, [0, 1, 2, 3, 2, 1]):
        np.testing.assert_array_equal(got, frames[want])
    assert gif.info["loop"] == 0 and gif.info["duration"] == 50


def test_report_embeds_every_picture():
    png = encode_png(_coded_images(1, 1)[0, 0])
    gif = encode_gif(_coded_images(1, 3)[0])
    sections = [Section("Scores", scores=[2.5, 1.25], tables=[Table("a <caption>", ("a", "b"), [(1, 0.5)])]),
                Section("Walks", figures=[("grid", png), ("direction 0", gif)])]
    text = report("sefa <w>", {"method": "sefa", "settings": {"k": 2}}, sections)
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert [s.split(",")[0] for s in sources] == ["data:image/png;base64", "data:image/gif;base64"]
    assert base64.b64decode(sources[0].split(",")[1]) == png and base64.b64decode(sources[1].split(",")[1]) == gif
    assert "sefa &lt;w&gt;" in text and "2.5" in text and "1.25" in text and "http" not in text
    assert "<caption>a &lt;caption&gt;</caption>" in text and "<td>0.5</td>" in text
    with pytest.raises(ValueError, match="PNG or GIF"):
        report("x", {}, [Section("bad", figures=[("bad", b"JPEG")])])


def test_walk_images_centre_column_is_the_original():
    G = lj.load_generator(FIXTURES / "stylegan2" / "ada_gray_s16.pt")
    space = latent_space(G, "w")
    vectors = np.eye(G.w_dim, dtype=np.float32)[:2]
    images = walk_images(space, G.params, vectors, None, seeds=(5, 6), num_steps=3, distance=2.0, progress=False)
    assert images.shape == (2, 2, 3, 16, 16, 1) and images.dtype == np.uint8
    originals = render(space, G.params, np.stack([space.sample(jax.random.key(s), 1)[0] for s in (5, 6)]),
                       progress=False)
    np.testing.assert_array_equal(images[:, :, 1], np.broadcast_to(originals[:, None], (2, 2, 16, 16, 1)))
    assert np.any(images[:, :, 0] != images[:, :, 1])
    with pytest.raises(ValueError, match="odd"):
        walk_images(space, G.params, vectors, None, seeds=(0,), num_steps=4, progress=False)


def test_scatter_draws_each_point_where_its_values_say():
    from latentjax.viz.plot import scatter

    image = scatter([0.0, 1.0], [0.0, 1.0], xlabel="a", ylabel="b", width=200, height=160)
    assert image.shape == (160, 200, 3) and image.dtype == np.uint8
    blue = np.all(image == (33, 110, 170), axis=-1)
    ys, xs = np.nonzero(blue)
    low, high = xs < 100, xs >= 100  # the first point bottom left, the second top right
    assert low.any() and high.any() and ys[low].mean() > ys[high].mean()
    with pytest.raises(ValueError, match="same length"):
        scatter([0.0, 1.0], [0.0], xlabel="a", ylabel="b")
    with pytest.raises(ValueError, match="finite"):
        scatter([0.0, np.nan], [0.0, 1.0], xlabel="a", ylabel="b")
    with pytest.raises(ValueError, match="labels"):
        scatter([0.0], [0.0], xlabel="a", ylabel="b", labels=["x", "y"])


def test_line_plot_draws_each_series_in_its_colour_rising_where_it_rises():
    from latentjax.viz.plot import line_plot

    image = line_plot([0.0, 1.0], {"up": [0.0, 1.0], "down": [1.0, 0.0]}, xlabel="alpha", ylabel="score",
                      width=200, height=160)
    assert image.shape == (160, 200, 3) and image.dtype == np.uint8
    for colour, rises in (((33, 110, 170), True), ((214, 96, 39), False)):
        ys, xs = np.nonzero(np.all(image[:, :140] == colour, axis=-1))  # left of the legend
        left, right = xs < 100, xs >= 100
        assert left.any() and right.any() and (ys[left].mean() > ys[right].mean()) == rises
    with pytest.raises(ValueError, match="series of its length"):
        line_plot([0.0, 1.0], {"a": [0.0]}, xlabel="a", ylabel="b")
    with pytest.raises(ValueError, match="finite"):
        line_plot([0.0, 1.0], {"a": [0.0, np.inf]}, xlabel="a", ylabel="b")
