"""The dissection program behind `latentjax dissect`: which units of a shapes generator's layers
detect which of the world's concepts.

`dissect_layers(config)` streams a probe of generated images per layer (`latentjax.shapes.concepts.
generator_probe`: activations, exact masks of each image's read-out rendered again, valid flags),
runs Network Dissection on it (`latentjax.metrics.dissection.dissect`), and again after a random
rotation of the layer's basis (the axis-alignment test); then, per layer and concept family, its
best detector units are ablated and inserted (`latentjax.shapes.intervention`) and the factor
changes read back. `main` writes per-layer unit tables and IoU heatmaps, `summary.md`,
`causal.md`, `dissection.json` and one `report.html`, and prints the summaries with the peak
memory and the units dissected per second.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import jax
import numpy as np

from latentjax.latent import space_from_spec
from latentjax.load import load_generator
from latentjax.metrics.dissection import Dissection, best_concepts, dissect
from latentjax.programs.flags import parse_config_flags
from latentjax.programs.outputs import output_dir
from latentjax.shapes.concepts import concept_names, generator_probe
from latentjax.shapes.intervention import unit_intervention
from latentjax.shapes.world import FACTOR_NAMES
from latentjax.viz import encode_png
from latentjax.viz.heatmap import heatmap
from latentjax.viz.report import Section, Table, markdown_table, save_sections_report

FAMILIES = ("region", "shape", "hue", "position")  # concept families the summary counts detectors by


def concept_family(name: str) -> str:
    """'region' (object, background, edge), 'shape', 'hue' or 'position' for a concept name."""
    label = name.split(":", 1)[-1]
    if label.startswith("hue"):
        return "hue"
    if label[:1] in ("x", "y") and label[1:].isdigit():
        return "position"
    return "region" if label in ("object", "background", "edge") else "shape"


def layers_of(G, spec: str) -> list[str]:
    """The layers to dissect: 'all' (every feature layer but the RGB outputs) or comma-separated names."""
    names = [n for n in G.layer_names if not n.endswith(".img")]
    if spec == "all":
        return names
    spec = [n.strip() for n in str(spec).split(",") if n.strip()]
    unknown = [n for n in spec if n not in G.layer_names]
    if unknown or not spec:
        raise ValueError(f"config.layers: unknown layers {unknown or 'none given'}; expected 'all' or names from "
                         f"{list(G.layer_names)}")
    return list(spec)


def random_rotation(units: int, seed: int) -> np.ndarray:
    """A random orthogonal [units, units] matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(units, units)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def summarize(result: Dissection, names, threshold: float) -> dict:
    best, score, detector = best_concepts(result.iou, threshold)
    families = {f: int(sum(detector & (np.array([concept_family(names[b]) for b in best]) == f))) for f in FAMILIES}
    return {"units": len(best), "detectors": int(detector.sum()), "detector_fraction": float(detector.mean()),
            "mean_best_iou": float(score.mean()), "families": families}


def dissect_layers(config, progress: bool = True) -> dict:
    """{layer: {'result': Dissection, 'rotated': Dissection or None, 'summary', 'rotated_summary', 'valid'}}
    and the run's 'names', 'seconds' and 'units'."""
    G = load_generator(config.generator)
    space = space_from_spec(G, config.space)
    names = concept_names(config.hue_bins, config.position_bins)
    key = jax.random.key(config.seed)
    out, units, start = {}, 0, time.perf_counter()
    for layer in layers_of(G, config.layers):
        options = dict(num_samples=config.num_samples, batch_size=config.batch_size, valid_tol=config.valid_tol,
                       hue_bins=config.hue_bins, position_bins=config.position_bins)
        batches = -(-config.num_samples // config.batch_size)
        run = lambda probe: dissect(probe, quantile=config.quantile, bins=config.bins,  # noqa: E731
                                    num_batches=batches, progress=progress)
        result = run(generator_probe(space, G.params, layer, key, **options))
        entry = {"result": result, "summary": summarize(result, names, config.iou_threshold),
                 "valid": result.samples / result.seen}
        if config.rotate:
            rotation = random_rotation(result.iou.shape[0], config.seed)
            entry["rotated"] = run(generator_probe(space, G.params, layer, key, rotation=rotation, **options))
            entry["rotated_summary"] = summarize(entry["rotated"], names, config.iou_threshold)
        units += result.iou.shape[0] * (2 if config.rotate else 1)
        entry["causal"] = causal_effects(space, G.params, layer, result, names, config, key)
        out[layer] = entry
    return {"layers": out, "names": names, "seconds": time.perf_counter() - start, "units": units}


def causal_effects(space, params, layer: str, result: Dissection, names, config, key) -> list[dict]:
    """Per concept family with detectors in the layer: its `causal_units` best detectors (by IoU)
    ablated, then inserted at their mean present value, and what that does to the factors."""
    best, score, detector = best_concepts(result.iou, config.iou_threshold)
    families = np.array([concept_family(names[b]) for b in best])
    rows = []
    for family in FAMILIES:
        chosen = [int(u) for u in np.argsort(-score, kind="stable") if detector[u] and families[u] == family]
        chosen = chosen[:config.causal_units]
        if not chosen:
            continue
        for mode in ("ablate", "insert"):
            effect = unit_intervention(space, params, layer, chosen, jax.random.fold_in(key, 1), mode=mode,
                                       values=result.present[chosen] if mode == "insert" else None,
                                       num_samples=config.causal_samples, batch_size=config.batch_size,
                                       valid_tol=config.valid_tol)
            rows.append({"layer": layer, "family": family, "concepts": sorted({names[best[u]] for u in chosen}),
                         "units": chosen, "mode": mode, **effect})
    return rows


def causal_table(run: dict) -> tuple[list[str], list[list]]:
    header = ["layer", "family", "units", "mode", "valid before", "valid after", "object removed",
              *(f"d {f}" for f in FACTOR_NAMES)]
    rows = [[r["layer"], r["family"], " ".join(map(str, r["units"])), r["mode"], round(r["valid_before"], 3),
             round(r["valid_after"], 3), round(r["object_removed"], 3), *(round(r["change"][f], 3) for f in FACTOR_NAMES)]
            for entry in run["layers"].values() for r in entry["causal"]]
    return header, rows


def summary_table(run: dict) -> tuple[list[str], list[list]]:
    header = ["layer", "units", "valid", "detectors", "fraction", "mean best IoU", "rotated fraction",
              "rotated mean IoU", *(f"{f} detectors" for f in FAMILIES)]
    rows = []
    for layer, entry in run["layers"].items():
        s, r = entry["summary"], entry.get("rotated_summary")
        rows.append([layer, s["units"], round(entry["valid"], 3), s["detectors"], round(s["detector_fraction"], 3),
                     round(s["mean_best_iou"], 4), "-" if r is None else round(r["detector_fraction"], 3),
                     "-" if r is None else round(r["mean_best_iou"], 4), *(s["families"][f] for f in FAMILIES)])
    return header, rows


def unit_rows(result: Dissection, names, threshold: float) -> list[list]:
    best, score, detector = best_concepts(result.iou, threshold)
    order = np.argsort(-score, kind="stable")
    return [[int(u), names[best[u]], round(float(score[u]), 4), round(float(result.thresholds[u]), 4),
             "yes" if detector[u] else ""] for u in order]


def write(run: dict, config, workdir: Path) -> Path:
    """Per-layer unit tables (`units_<layer>.md`) and IoU heatmaps, `summary.md`, `dissection.json`, `report.html`."""
    names, sections = run["names"], []
    for layer, entry in run["layers"].items():
        result = entry["result"]
        rows = unit_rows(result, names, config.iou_threshold)
        (workdir / f"units_{layer}.md").write_text(markdown_table(["unit", "best concept", "IoU", "threshold",
                                                                   "detector"], rows) + "\n")
        top = [r[0] for r in rows[:config.heatmap_units]]
        image = encode_png(heatmap(result.iou[top], [f"unit {u}" for u in top], names, vmin=0.0,
                                   title=f"{layer}: IoU of the {len(top)} best units"))
        (workdir / f"iou_{layer}.png").write_bytes(image)
        sections.append(Section(f"layer {layer}", entry["summary"]["families"],
                                [Table("units by best IoU", ("unit", "best concept", "IoU", "threshold", "detector"),
                                       rows)], None, [(f"{layer}: IoU per unit and concept", image)]))
    header, rows = summary_table(run)
    (workdir / "summary.md").write_text(markdown_table(header, rows) + "\n")
    causal_header, causal_rows = causal_table(run)
    (workdir / "causal.md").write_text(markdown_table(causal_header, causal_rows) + "\n")
    record = {"generator": str(config.generator), "config": config.to_dict(), "concepts": list(names),
              "seconds": run["seconds"], "units": run["units"], "layers": {
                  layer: {"summary": e["summary"], "rotated_summary": e.get("rotated_summary"), "valid": e["valid"],
                          "thresholds": e["result"].thresholds.tolist(), "present": e["result"].present.tolist(),
                          "iou": e["result"].iou.tolist(), "causal": e["causal"]}
                  for layer, e in run["layers"].items()}}
    (workdir / "dissection.json").write_text(json.dumps(record, indent=1))
    overview = Section("Detectors per layer", {}, [Table(f"a unit detects its best concept above IoU "
                                                         f"{config.iou_threshold:g}; 'rotated': the same after a "
                                                         f"random rotation of the layer's basis", header, rows),
                                        Table("causal effects: each family's best detectors set to 0 (ablate) or to "
                                              "their mean present value (insert); factor changes over the world's "
                                              "spread", causal_header, causal_rows)])
    return save_sections_report(workdir / "report.html", f"Dissection of {config.generator}",
                                {"concepts": len(names), "samples": config.num_samples,
                                 "valid_tol": config.valid_tol}, [overview, *sections])


def main(argv) -> int:
    """`latentjax dissect --config FILE[:variant] [--config.field=value ...] --workdir DIR`."""
    values = parse_config_flags(argv, "dissect")
    workdir = output_dir(values.workdir, "--workdir")
    run = dissect_layers(values.config)
    report = write(run, values.config, workdir)
    header, rows = summary_table(run)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{markdown_table(header, rows)}\n\n{markdown_table(*causal_table(run))}\n{run['units']} units in {run['seconds']:.1f} s "
          f"({run['units'] / run['seconds']:.1f} units/s), peak memory {peak:.0f} MiB\n"
          f"wrote {workdir / 'summary.md'}, {workdir / 'causal.md'}, units_<layer>.md, iou_<layer>.png, {workdir / 'dissection.json'}\n"
          f"report: {report}")
    return 0
