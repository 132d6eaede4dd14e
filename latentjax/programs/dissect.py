"""The dissection program behind `latentjax dissect`: which units of a shapes generator's or a
recognition network's layers detect which of the world's concepts.

`dissect_layers(config)` streams a probe per layer: for a generator, generated images
(`latentjax.shapes.concepts.generator_probe`: activations, exact masks of each image's read-out
rendered again, valid flags); for a recognizer (`latentjax.nn.recognizer`), true renders and their
exact masks (`world_probe`). It runs Network Dissection on each (`latentjax.metrics.dissection.
dissect`), and again after a random rotation of the layer's basis (the axis-alignment test);
then, for a generator, per layer and concept family, its best detector units are ablated and
inserted (`latentjax.shapes.intervention`) and the factor changes read back. `main` writes
per-layer unit tables and IoU heatmaps, `summary.md`, `causal.md` (generators), `dissection.json`
and one `report.html`, and prints the summaries with the peak memory and the units dissected per
second.
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
from latentjax.metrics.dissection import IQR_DETECTOR, Dissection, dissect
from latentjax.programs.flags import parse_config_flags
from latentjax.programs.outputs import output_dir, write
from latentjax.nn.recognizer import load_recognizer
from latentjax.shapes.concepts import concept_names, generator_probe, world_probe
from latentjax.shapes.intervention import unit_intervention
from latentjax.shapes.scoring import world_spread
from latentjax.shapes.world import FACTOR_NAMES
from latentjax.viz import encode_png
from latentjax.viz.heatmap import heatmap
from latentjax.viz.report import Section, Table, markdown_table, report

FAMILIES = ("region", "shape", "hue", "position")  # concept families the summary counts detectors by


def concept_family(name: str) -> str:
    """'region' (object, background, edge), 'shape', 'hue' or 'position' for a concept name."""
    label = name.split(":", 1)[-1]
    if label.startswith("hue"):
        return "hue"
    if label[:1] in ("x", "y") and label[1:].isdigit():
        return "position"
    return "region" if label in ("object", "background", "edge") else "shape"


def layers_of(available, spec: str) -> list[str]:
    """The layers to dissect: 'all' (every feature layer but the RGB outputs) or comma-separated names."""
    names = [n for n in available if not n.endswith(".img") and n != "img"]
    if spec == "all":
        return names
    spec = [n.strip() for n in str(spec).split(",") if n.strip()]
    unknown = [n for n in spec if n not in names]
    if unknown or not spec:
        raise ValueError(f"config.layers: unknown layers {unknown or 'none given'}; expected 'all' or names from "
                         f"{names}")
    return list(spec)


def random_rotation(units: int, seed: int) -> np.ndarray:
    """A random orthogonal [units, units] matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(units, units)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def summarize(result: Dissection, names, threshold: float) -> dict:
    best, score, detector = result.best_concepts(threshold)
    families = {f: int(sum(detector & (np.array([concept_family(names[b]) for b in best]) == f))) for f in FAMILIES}
    return {"units": len(best), "detectors": int(detector.sum()), "detector_fraction": float(detector.mean()),
            "mean_best_iou": float(score.mean()), "families": families}


def network_probes(config):
    """(the network's name, its feature layers, probe(layer, key, rotation), causal(layer, result, names, key))
    for `config.network`: a shapes 'generator' (generated images, masks of their read-out, valid
    samples only, causal effects through its hooks) or a 'recognizer' (true renders, exact masks;
    no causal effects)."""
    options = dict(num_samples=config.num_samples, batch_size=config.batch_size, hue_bins=config.hue_bins,
                   position_bins=config.position_bins)
    if config.network == "generator":
        G = load_generator(config.generator)
        space = space_from_spec(G, config.space)
        return (str(config.generator), G.layer_names,
                lambda layer, key, rotation: generator_probe(space, G.params, layer, key, rotation=rotation,
                                                             valid_tol=config.valid_tol, **options),
                lambda layer, result, names, key: causal_effects(space, G.params, layer, result, names, config, key))
    if config.network == "recognizer":
        net = load_recognizer(config.recognizer)
        return (str(config.recognizer), net.layer_names,
                lambda layer, key, rotation: world_probe(net.features, net.params, layer, key, rotation=rotation,
                                                         resolution=net.config.img_resolution, **options),
                lambda *_: [])
    raise ValueError(f"config.network must be 'generator' or 'recognizer', got {config.network!r}")


def dissect_layers(config, progress: bool = True) -> dict:
    """{layer: {'result': Dissection, 'rotated': Dissection or None, 'summary', 'rotated_summary', 'valid',
    'causal'}} and the run's 'network', 'names', 'seconds' and 'units'."""
    network, available, probe, causal = network_probes(config)
    names = concept_names(config.hue_bins, config.position_bins)
    key = jax.random.key(config.seed)
    batches = -(-config.num_samples // config.batch_size)
    out, units, start = {}, 0, time.perf_counter()
    for layer in layers_of(available, config.layers):
        run = lambda rotation: dissect(probe(layer, key, rotation), threshold=config.threshold,  # noqa: E731
                                       quantile=config.quantile, bins=config.bins, num_batches=batches,
                                       progress=progress)
        result = run(None)
        entry = {"result": result, "summary": summarize(result, names, config.iou_threshold),
                 "valid": result.samples / result.seen}
        if config.rotate:
            entry["rotated"] = run(random_rotation(result.iou.shape[0], config.seed))
            entry["rotated_summary"] = summarize(entry["rotated"], names, config.iou_threshold)
        units += result.iou.shape[0] * (2 if config.rotate else 1)
        entry["causal"] = causal(layer, result, names, key)
        out[layer] = entry
    return {"network": network, "layers": out, "names": names, "seconds": time.perf_counter() - start,
            "units": units}


def causal_effects(space, params, layer: str, result: Dissection, names, config, key) -> list[dict]:
    """Per concept family with detectors in the layer: its `causal_units` best detectors (by IoU)
    ablated, then inserted at their mean present value, and what that does to the factors."""
    best, score, detector = result.best_concepts(config.iou_threshold)
    families = np.array([concept_family(names[b]) for b in best])
    rows, spread = [], world_spread()
    for family in FAMILIES:
        chosen = [int(u) for u in np.argsort(-score, kind="stable") if detector[u] and families[u] == family]
        chosen = chosen[:config.causal_units]
        if not chosen:
            continue
        for mode in ("ablate", "insert"):
            effect = unit_intervention(space, params, layer, chosen, jax.random.fold_in(key, 1), mode=mode,
                                       values=result.present[chosen] if mode == "insert" else None,
                                       num_samples=config.causal_samples, batch_size=config.batch_size,
                                       valid_tol=config.valid_tol, spread=spread)
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


def unit_rows(result: Dissection, names, threshold: float) -> tuple[list[str], list[list]]:
    """The unit table, best IoU first (with IQR thresholds, also each unit's IQR for its concept)."""
    best, score, detector = result.best_concepts(threshold)
    order = np.argsort(-score, kind="stable")
    iqr = None if result.search is None else result.search.iqr[np.arange(len(best)), best]
    header = ["unit", "best concept", "IoU", *([] if iqr is None else ["IQR"]), "threshold", "detector"]
    return header, [[int(u), names[best[u]], round(float(score[u]), 4), *([] if iqr is None else [round(float(iqr[u]), 4)]),
                     round(float(result.thresholds[u]), 4), "yes" if detector[u] else ""] for u in order]


def write_results(run: dict, config, workdir: Path) -> Path:
    """Per-layer unit tables (`units_<layer>.md`) and IoU heatmaps, `summary.md`, `dissection.json`, `report.html`."""
    names, sections = run["names"], []
    for layer, entry in run["layers"].items():
        result = entry["result"]
        unit_header, rows = unit_rows(result, names, config.iou_threshold)
        (workdir / f"units_{layer}.md").write_text(markdown_table(unit_header, rows) + "\n")
        top = [r[0] for r in rows[:config.heatmap_units]]
        image = encode_png(heatmap(result.iou[top], [f"unit {u}" for u in top], names, vmin=0.0,
                                   title=f"{layer}: IoU of the {len(top)} best units"))
        (workdir / f"iou_{layer}.png").write_bytes(image)
        sections.append(Section(f"layer {layer}", entry["summary"]["families"],
                                [Table("units by best IoU", unit_header, rows)], None, [(f"{layer}: IoU per unit and concept", image)]))
    header, rows = summary_table(run)
    (workdir / "summary.md").write_text(markdown_table(header, rows) + "\n")
    causal_header, causal_rows = causal_table(run)
    rule = (f"IoU {config.iou_threshold:g}" if config.threshold == "quantile" else
            f"IQR {IQR_DETECTOR:g} and IoU {config.iou_threshold:g} (GAN Dissection's thresholds)")
    tables = [Table(f"a unit detects its best concept above {rule}; 'rotated': the same after a random rotation of "
                    f"the layer's basis", header, rows)]
    if causal_rows:
        (workdir / "causal.md").write_text(markdown_table(causal_header, causal_rows) + "\n")
        tables.append(Table("causal effects: each family's best detectors set to 0 (ablate) or to their mean present "
                            "value (insert); factor changes over the world's spread", causal_header, causal_rows))
    record = {"network": run["network"], "config": config.to_dict(), "concepts": list(names),
              "seconds": run["seconds"], "units": run["units"], "layers": {
                  layer: {"summary": e["summary"], "rotated_summary": e.get("rotated_summary"), "valid": e["valid"],
                          "thresholds": e["result"].thresholds.tolist(), "present": e["result"].present.tolist(),
                          "iou": e["result"].iou.tolist(), "causal": e["causal"],
                          **({} if e["result"].search is None else {"iqr": e["result"].search.iqr.tolist()})}
                  for layer, e in run["layers"].items()}}
    (workdir / "dissection.json").write_text(json.dumps(record, indent=1))
    summary = {"network": config.network, "concepts": len(names), "samples": config.num_samples}
    if config.network == "generator":
        summary["valid_tol"] = config.valid_tol
    return write(workdir / "report.html", report(f"Dissection of {run['network']}", summary,
                                                 [Section("Detectors per layer", {}, tables), *sections]))


def main(argv) -> int:
    """`latentjax dissect --config FILE[:variant] [--config.field=value ...] --workdir DIR`."""
    values = parse_config_flags(argv, "dissect")
    workdir = output_dir(values.workdir, "--workdir")
    run = dissect_layers(values.config)
    report = write_results(run, values.config, workdir)
    header, rows = summary_table(run)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    causal = causal_table(run)
    causal = f"\n{markdown_table(*causal)}\n" if causal[1] else ""
    print(f"{markdown_table(header, rows)}\n{causal}\n{run['units']} units in {run['seconds']:.1f} s "
          f"({run['units'] / run['seconds']:.1f} units/s), peak memory {peak:.0f} MiB\n"
          f"wrote {workdir / 'summary.md'}{', causal.md' if causal else ''}, units_<layer>.md, iou_<layer>.png, "
          f"{workdir / 'dissection.json'}\nreport: {report}")
    return 0
