"""`latentjax dissect` on the built-in generator and the built-in recognizer (smoke configs): the files it
writes and their consistency."""

import json

import numpy as np

from latentjax.cli import main
from latentjax.programs.dissect import concept_family, layers_of


def test_smoke_dissection_writes_tables_heatmaps_and_a_report(tmp_path, capsys):
    assert main(["dissect", "--config", "configs/dissect.py:smoke", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "units/s" in out and "peak memory" in out
    for name in ("summary.md", "causal.md", "units_b8.md", "iou_b8.png", "dissection.json", "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    record = json.loads((tmp_path / "dissection.json").read_text())
    layer = record["layers"]["b8"]
    iou = np.array(layer["iou"])
    assert iou.shape == (64, len(record["concepts"])) and np.all((iou >= 0) & (iou <= 1))
    assert layer["summary"]["detectors"] == int(np.sum(iou.max(axis=1) > 0.04))
    assert sum(layer["summary"]["families"].values()) == layer["summary"]["detectors"]
    assert layer["rotated_summary"]["units"] == 64 and 0 < layer["valid"] <= 1
    causal = layer["causal"]
    assert {r["mode"] for r in causal} == {"ablate", "insert"} and all(len(r["units"]) <= 2 for r in causal)
    assert all(set(r["change"]) == {"shape", "x", "y", "scale", "rotation", "hue", "background"} for r in causal)


def test_recognizer_dissection_with_gan_dissection_thresholds(tmp_path, capsys):
    """The shipped recognizer, IQR thresholds: true renders (every sample kept), no causal table."""
    assert main(["dissect", "--config", "configs/dissect.py:recognizer,iqr,smoke", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "units/s" in out and not (tmp_path / "causal.md").exists()
    record = json.loads((tmp_path / "dissection.json").read_text())
    assert record["network"] == "builtin:shapes_recognizer" and set(record["layers"]) == {"conv1"}
    layer = record["layers"]["conv1"]
    iou, iqr = np.array(layer["iou"]), np.array(layer["iqr"])
    assert iou.shape == iqr.shape == (16, len(record["concepts"])) and layer["valid"] == 1.0 and layer["causal"] == []
    best = iqr.argmax(axis=1)
    detectors = (iqr[np.arange(16), best] > 0.01) & (iou[np.arange(16), best] > 0.05)
    assert layer["summary"]["detectors"] == int(detectors.sum())
    assert "| IQR |" in (tmp_path / "units_conv1.md").read_text()


def test_layers_and_concept_families():
    class G:
        layer_names = ("b4", "b4.img", "b8")

    assert layers_of(G.layer_names, "all") == ["b4", "b8"] and layers_of(G.layer_names, "b8, b4") == ["b8", "b4"]
    try:
        layers_of(G.layer_names, "b16")
    except ValueError as e:
        assert "b16" in str(e) and "'b8'" in str(e)
    else:
        raise AssertionError("an unknown layer was accepted")
    assert [concept_family(n) for n in ("object", "edge", "object:square", "image:hue3", "image:x0", "image:y2")] == \
        ["region", "region", "shape", "hue", "position", "position"]
