"""Built-in generators: `builtin:NAME` loads the native directory shipped in the package, with clear
errors for an unknown name or missing weights. The weights themselves are not needed: the registry
path is pointed at a random-weight generator written here."""

import jax
import numpy as np
import pytest

import latentjax as lj
from latentjax import builtin


def test_builtin_loads_the_registered_directory(tiny_generator_dir, monkeypatch):
    monkeypatch.setattr(builtin, "path", lambda name: tiny_generator_dir if name == "shapes" else pytest.fail(name))
    G, expected = lj.load_generator("builtin:shapes"), lj.load_generator(tiny_generator_dir)
    assert G.config == expected.config
    jax.tree.map(np.testing.assert_array_equal, G.params, expected.params)
    z = jax.random.normal(jax.random.key(0), (2, 8))
    np.testing.assert_array_equal(G.generate(G.params, z), expected.generate(expected.params, z))


def test_registry_names_each_generator_inside_the_package():
    assert "shapes" in builtin.BUILTINS and "trained" in builtin.BUILTINS["shapes"]
    shapes_dir = builtin.path("shapes")
    assert shapes_dir.parent == builtin.path.__globals__["Path"](builtin.__file__).parent and shapes_dir.name == "shapes"


def test_unknown_name_and_missing_weights_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(lj.CheckpointError, match=r"builtin:nope: unknown built-in network 'nope'; available: shapes, shapes_assessor, shapes_identity, shapes_identity_mapper, shapes_pose, shapes_recognizer, shapes_warm_start"):
        lj.load_generator("builtin:nope")
    monkeypatch.setattr(builtin, "path", lambda name: tmp_path / name)
    with pytest.raises(lj.CheckpointError, match=r"builtin:shapes: its weights are missing .*config.json and params/"):
        lj.load_generator("builtin:shapes")
