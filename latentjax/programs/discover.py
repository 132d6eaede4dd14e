"""The discovery pipeline behind `latentjax discover`, usable from code.

A run is an ml_collections config; `configs/*.py` build theirs with this module's config-builder
API: `base_config(method, settings)` (the generator, the latent space, the method and its settings
(its `Config` fields, learned methods' `steps` and `batch_size` included), the walks),
`multi_config(methods, ground_truth)` and `smoke(config, ...)` for the `:smoke` variants.
`discover(config, workdir)` computes the directions and writes `directions.npz`, a grid PNG per
seed, a GIF per direction and `report.html`. A multi-method run (`configs/shapes.py`) has `methods`
(name -> settings) and `ground_truth` (`GroundTruthConfig` fields): every method writes to
`workdir/<method>/` and is scored against the shapes world's factors (`latentjax.shapes.scoring`);
`workdir` gets the comparison (`ground_truth.md`, `.json`) and one `report.html`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

from latentjax.config import configure, space_config
from latentjax.directions import GUIDED_METHODS, LEARNED_METHODS, METHODS, Directions
from latentjax.metrics.scorer import Scorer
from latentjax.latent import space_from_spec
from latentjax.load import load_generator
from latentjax.nn.recognizer import load_recognizer
from latentjax.shapes.reading import VALID_TOL, readout_scorer
from latentjax.shapes.recognition import assessor_scorer
from latentjax.shapes.scoring import GroundTruth, GroundTruthConfig, comparison, ground_truth, random_baseline
from latentjax.viz import encode_png
from latentjax.viz.plot import line_plot
from latentjax.viz.report import Section, Table, markdown_table, report
from latentjax.programs.flags import parse_config_flags
from latentjax.programs.outputs import output_dir, write
from latentjax.programs.walk import walk_figures, write_walks


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHODS)}")


def base_config(method: str, settings: dict) -> ml_collections.ConfigDict:
    """The fields every discovery config shares; `settings` are the method's config fields."""
    _check_method(method)
    config = _common_config()
    config.method = method
    config.settings = ml_collections.ConfigDict(settings)
    return config


def multi_config(methods: dict[str, dict], ground_truth: dict) -> ml_collections.ConfigDict:
    """A multi-method run: `methods` maps each method to its settings; `ground_truth` holds
    `GroundTruthConfig` fields for scoring every method against the shapes factors."""
    for method in methods:
        _check_method(method)
    config = _common_config()
    config.methods = ml_collections.ConfigDict(methods)
    config.ground_truth = ml_collections.ConfigDict(ground_truth)
    return config


def _common_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.generator = ""  # checkpoint or latentjax directory (required: --config.generator=PATH)
    config.seed = 0  # the method's key: jax.random.key(seed)
    config.space = space_config()  # name '' = the family's editing space (StyleGAN2 'w+', BigGAN/PGGAN 'z')
    config.walk = ml_collections.ConfigDict({
        "kind": "linear",  # 'linear' or 'iso_density'
        "seeds": (0, 1, 2),  # one grid per seed
        "num_steps": 7,  # odd, so that the centre column is the original
        "distance": 3.0,  # steps run over [-distance, distance]
        "batch_size": 8,
        "gif_ms": 120,  # GIF frame duration
    })
    return config


@dataclasses.dataclass(frozen=True)
class MultiRun:
    """What a multi-method `discover` found: directions and ground-truth scores by method, and the report."""

    directions: dict[str, Directions]
    scores: dict[str, GroundTruth]
    seconds: dict[str, float]
    report: Path
    baselines: dict[str, list[GroundTruth]] = dataclasses.field(default_factory=dict)  # random directions


def discover(config, workdir, progress: bool = True) -> Directions | MultiRun:
    """Compute directions as `config` says and write them with their pictures under `workdir`
    (a `MultiRun` for a multi-method config)."""
    if not config.generator:
        raise ValueError("config.generator is empty: pass --config.generator=PATH")
    workdir = Path(workdir)
    G = load_generator(config.generator)
    space = space_from_spec(G, config.space)
    if space.num_classes and space.options.get("class_index") is None:  # fail before the method runs
        raise ValueError(f"{config.generator} is class-conditional: choose the class of the walks with "
                         f"--config.space.class_index=N (0..{space.num_classes - 1})")
    if "methods" in config:
        return _discover_all(config, workdir, G, space, progress)
    directions, summary = _find(config, config.method, config.settings, space, progress, workdir)
    directions.save(workdir / "directions.npz")
    write_walks(workdir, space, G.params, directions, summary, progress=progress, **config.walk.to_dict())
    return directions


ASSESSOR = "builtin:shapes_assessor"


def scorer_from_spec(spec: str) -> Scorer:
    """The `Scorer` a guided method's `scorer` setting names: 'readout' (the shapes world's
    read-out, `VALID_TOL`), 'readout:TOL' (valid renders at tolerance TOL), 'assessor' (the shipped
    shapes assessor, differentiable) or 'assessor:PATH' (the value heads of a recognizer directory)."""
    name, _, option = str(spec).partition(":")
    if name == "assessor":
        return assessor_scorer(load_recognizer(option or ASSESSOR))
    if name == "readout":
        try:
            tol = float(option) if option else VALID_TOL
        except ValueError:
            tol = None
        if tol is None or not tol > 0:
            raise ValueError(f"scorer {spec!r}: the read-out's tolerance must be a positive number ('readout:0.2')")
        return readout_scorer(tol)
    raise ValueError(f"unknown scorer {spec!r}; expected 'readout', 'readout:TOL', 'assessor' or 'assessor:PATH'")


def _find(config, method: str, settings, space, progress: bool, workdir: Path) -> tuple[Directions, dict]:
    """Run one method (a learned one trains in `workdir / "train"`, resuming what is there; a guided
    one gets the scorer its `scorer` setting names); its directions and the summary that goes with them."""
    function, config_cls = METHODS[method]
    settings = dict(settings.to_dict() if isinstance(settings, ml_collections.ConfigDict) else settings)
    guide = ()
    if method in GUIDED_METHODS:
        if "scorer" not in settings:
            raise ValueError(f"method {method!r} is guided: its settings need a scorer (e.g. scorer='readout')")
        guide = (scorer_from_spec(settings.pop("scorer")),)
    settings = configure(config_cls, settings)
    extra = {"workdir": workdir / "train"} if method in LEARNED_METHODS else {}
    start = time.perf_counter()
    directions = function(space, *guide, settings, jax.random.key(config.seed), progress=progress, **extra)
    seconds = time.perf_counter() - start
    summary = {"generator": str(config.generator), "method": method, "space": directions.space,
               "settings": directions.settings, "seconds": round(seconds, 3), "walk": config.walk.to_dict()}
    return directions, summary


def score_curves(directions: Directions) -> tuple[list[Table], list[tuple[str, bytes]]]:
    """The score-against-alpha curves of a method that records them (GANalyze's `settings["curve"]`) as
    a table and a plot; nothing for other methods."""
    curves = directions.settings.get("curve")
    if not curves:
        return [], []
    alphas = directions.settings["curve_alphas"]
    rows = [(name, *(round(v, 4) for v in values), round(float(slope), 3), monotone) for (name, values), slope, monotone
            in zip(curves.items(), directions.settings["slopes"], directions.settings["monotone"])]
    table = Table("mean score on held-out latents against alpha (slope 1: the score moves by alpha)",
                  ("attribute", *(f"alpha {a:g}" for a in alphas), "slope", "monotone"), rows)
    plot = line_plot(alphas, curves, xlabel="alpha", ylabel="mean score", title=f"{directions.method}: score vs alpha")
    return [table], [(f"{directions.method}: mean score against alpha", encode_png(plot))]


def _discover_all(config, workdir: Path, G, space, progress: bool) -> MultiRun:
    scoring = configure(GroundTruthConfig, config.ground_truth)
    found, scores, seconds, sections, baselines, curve_md = {}, {}, {}, [], {}, {}
    for method, settings in config.methods.items():
        sub = workdir / method
        directions, summary = _find(config, method, settings, space, progress, sub)
        directions.save(sub / "directions.npz")
        figures, _ = walk_figures(sub, space, G.params, directions, progress=progress, **config.walk.to_dict())
        result = ground_truth(space, G.params, directions, scoring)
        masked = directions.layers is not None and not directions.layers.all()
        label = (f"random ({len(directions)} in {directions.space['name']}"
                 f"{', layers as ' + method if masked else ''}, mean of {scoring.baseline_seeds})")
        if scoring.baseline_seeds and label not in baselines:  # one per direction count and layer mask
            baselines[label] = random_baseline(space, G.params, directions, scoring)
        heatmaps = []
        for name, image in result.heatmaps().items():
            heatmaps.append((f"{method}: {name} (rows = directions, columns = factors)", encode_png(image)))
            (sub / f"{name}.png").write_bytes(heatmaps[-1][1])
        summary["ground_truth"] = result.to_dict()
        (sub / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        found[method], scores[method], seconds[method] = directions, result, summary["seconds"]
        curve_tables, curve_figures = score_curves(directions)
        curve_md[method] = "".join(f"\n{_markdown(t)}" for t in curve_tables)
        sections.append(Section(f"{method} directions in {directions.space['name']}",
                                {k: v for k, v in summary.items() if k not in ("generator", "walk", "ground_truth")},
                                [result.table()] + curve_tables, directions.scores, heatmaps + curve_figures + figures))
    header, rows = comparison(scores, seconds, baselines)
    (workdir / "ground_truth.md").write_text(markdown_table(header, rows) + "\n" + "\n".join(
        f"## {method}\n\n{_markdown(result.table())}{curve_md[method]}" for method, result in scores.items()))
    records = {method: {**result.to_dict(), "seconds": seconds[method]} for method, result in scores.items()}
    records["baselines"] = {label: [r.to_dict() for r in runs] for label, runs in baselines.items()}
    (workdir / "ground_truth.json").write_text(json.dumps(records, indent=1) + "\n")
    overview = Section("Ground truth: purity of the best direction per factor",
                       tables=[Table(f"purity >= {scoring.threshold:g} counts as found; valid = share of walk "
                                     f"end points that are clean renders", header, rows)])
    summary = {"generator": str(config.generator), "space": space.spec, "methods": list(found),
               "ground_truth": scoring.to_dict(), "walk": config.walk.to_dict()}
    page = write(workdir / "report.html", report(f"{', '.join(found)} directions", summary, [overview] + sections))
    return MultiRun(found, scores, seconds, page, baselines)


def _markdown(table: Table) -> str:
    """A table as Markdown, its caption as the paragraph below it."""
    return f"{markdown_table(table.header, table.rows)}\n{table.caption}\n"


def describe(result: Directions | MultiRun, workdir) -> str:
    """What `latentjax discover` prints: the directions found and where they were written."""
    workdir = Path(workdir)
    if isinstance(result, MultiRun):
        header, rows = comparison(result.scores, result.seconds, result.baselines)
        return f"{markdown_table(header, rows)}\nwrote {', '.join(str(workdir / m) for m in result.directions)} and " \
               f"{workdir / 'ground_truth.md'}\nreport: {result.report}"
    return (f"{result.method}: {len(result)} directions in {result.space['name']!r}, scores "
            f"{np.array2string(result.scores[:5], precision=4)}{' ...' if len(result) > 5 else ''}\n"
            f"wrote {workdir / 'directions.npz'}, walk grids, GIFs and {workdir / 'report.html'}")


def smoke(config, **settings) -> ml_collections.ConfigDict:
    """The `:smoke` variant of a discovery config: one seed, three steps, a small w fit, and `settings`
    overrides (of `config.settings`; a multi-method config shrinks `config.methods` itself)."""
    config.walk.seeds = (0,)
    config.walk.num_steps = 3
    config.space.fit_samples = 2000
    if settings:
        config.settings.update(settings)
    return config


def main(argv) -> int:
    """`latentjax discover --config FILE[:variant] [--config.field=value ...] --workdir DIR`."""
    values = parse_config_flags(argv, "discover")
    output_dir(values.workdir, "--workdir")
    result = discover(values.config, values.workdir)
    print(describe(result, values.workdir))
    return 0
