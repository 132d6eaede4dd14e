"""Does unit-level disentanglement go with accuracy and generalisation? A family of small recognition
networks trained on the shapes world, each dissected against the world's exact concepts.

    OPENBLAS_NUM_THREADS=1 python benchmarks/recognition_study.py --workdir runs/recognition_study
    python benchmarks/recognition_study.py --workdir out/study --steps 20 --samples 64   # a quick look

Every member is `configs/train_recognizer.py` (shape and hue-bin heads on 32x32 renders with
scale in [0, 0.6)) with one change from the base: its seed, width, weight decay, number of
training images, training length, depth or learning rate (the last three reach the shape by
its area, the way the area shortcut below does, or by its form). Per member: accuracy on fresh
renders from the training ranges and from the held-out scales [0.6, 1) (the generalisation gap
is their difference, mean over the heads), and Network Dissection of every conv layer
(`latentjax dissect`'s `dissect_layers`, rotated too): the fraction of detector units, their
mean best IoU, the drop of the detector fraction after a random rotation of each layer's basis,
the detectors by concept family (the shape detectors' fraction is a measure of its own) and the
distinct concepts detected. The base network at initialisation ('untrained') is a reference row,
and so is the area shortcut: a depth-2 tree on the object's pixel area. Prints the table and the
Pearson and Spearman correlations across the trained members; writes JSON, a markdown table and
a scatter plot. Members train in `WORKDIR/<name>` (a killed study resumes; finished members are
not redone).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
from scipy import stats
from sklearn.tree import DecisionTreeClassifier

sys.path.insert(0, str(Path(__file__).parents[1] / "configs"))

import train_recognizer  # noqa: E402
from latentjax.nn.recognizer import Recognizer, load_recognizer, save_recognizer  # noqa: E402
from latentjax.programs.dissect import FAMILIES, dissect_layers  # noqa: E402
from latentjax.shapes.recognition import accuracy  # noqa: E402
from latentjax.shapes.world import render, sample_factors  # noqa: E402
from latentjax.tasks.recognizer import EXPORT_DIR, recognizer_config  # noqa: E402
from latentjax.train import train  # noqa: E402
from latentjax.viz import encode_png  # noqa: E402
from latentjax.viz.report import markdown_table  # noqa: E402
from latentjax.viz.plot import scatter  # noqa: E402
from timing import describe_environment, write_record  # noqa: E402

import dissect as dissect_config  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BASELINE = "untrained"  # the base network at initialisation: a reference row, left out of the correlations
FAMILY = {  # name: changes from configs/train_recognizer.py
    BASELINE: {"total_steps": 0},
    "base": {},
    "seed1": {"seed": 1},
    "seed2": {"seed": 2},
    "seed3": {"seed": 3},
    "width8": {"width": 8},
    "width32": {"width": 32},
    "decay0.05": {"weight_decay": 0.05},
    "decay0.5": {"weight_decay": 0.5},
    "data256": {"num_train": 256},
    "data1024": {"num_train": 1024},
    "data4096": {"num_train": 4096},
    "steps1000": {"total_steps": 1000},
    "steps2000": {"total_steps": 2000},
    "steps3000": {"total_steps": 3000},
    "depth3": {"depth": 3},
    "lr0.001": {"lr": 1e-3},
}
MEASURES = ("detector_fraction", "mean_best_iou", "alignment_drop", "shape_detector_fraction", "unique_concepts")
OUTCOMES = ("accuracy", "shifted_accuracy", "gap")


def member(name: str, changes: dict, args) -> dict:
    """Train (or resume) one member, then score and dissect it; cached in WORKDIR/<name>/study.json."""
    workdir = Path(args.workdir) / name
    cached = workdir / "study.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    config = train_recognizer.get_config()
    base_steps = config.total_steps
    config.update(changes)
    if args.steps is not None:  # the base trains args.steps; a member that changes the length keeps its share
        config.total_steps = round(config.total_steps * args.steps / base_steps)
    config.update(ckpt_every=max(config.total_steps // 4, 1), eval_every=max(config.total_steps, 1))
    if config.total_steps:
        train(config, workdir)
    else:
        save_recognizer(Recognizer.init(recognizer_config(config), jax.random.key(config.seed)), workdir / EXPORT_DIR)
    net = load_recognizer(workdir / EXPORT_DIR)
    key, heads, bins = jax.random.key(args.seed), tuple(config.heads), int(config.bins)
    acc = accuracy(net, net.params, key, heads=heads, bins=bins, num_samples=args.test,
                   ranges=config.train_ranges.to_dict())
    shifted = accuracy(net, net.params, key, heads=heads, bins=bins, num_samples=args.test,
                       ranges=config.shifted_ranges.to_dict())
    dconfig = dissect_config.get_config("recognizer")
    dconfig.update(recognizer=str(workdir / EXPORT_DIR), num_samples=args.samples, seed=args.seed)
    run = dissect_layers(dconfig, progress=False)
    summaries = [e["summary"] for e in run["layers"].values()]
    rotated = [e["rotated_summary"] for e in run["layers"].values()]
    units = sum(s["units"] for s in summaries)
    fraction = sum(s["detectors"] for s in summaries) / units
    families = {f: sum(s["families"][f] for s in summaries) for f in FAMILIES}
    detected = set()  # NetDissect's headline: the distinct concepts some unit detects
    for entry in run["layers"].values():
        best, _, detector = entry["result"].best_concepts(dconfig.iou_threshold)
        detected.update(run["names"][b] for b in best[detector])
    record = {
        "name": name, "changes": changes, "units": units,
        "accuracy": float(np.mean(list(acc.values()))), "shifted_accuracy": float(np.mean(list(shifted.values()))),
        "per_head": {h: {"accuracy": acc[h], "shifted_accuracy": shifted[h]} for h in heads},
        "detector_fraction": fraction,
        "mean_best_iou": sum(s["mean_best_iou"] * s["units"] for s in summaries) / units,
        "alignment_drop": fraction - sum(r["detectors"] for r in rotated) / units,
        "families": families, "shape_detector_fraction": families["shape"] / units,
        "unique_concepts": len(detected), "concepts": sorted(detected),
        "layers": {layer: {"summary": e["summary"], "rotated_summary": e["rotated_summary"]}
                   for layer, e in run["layers"].items()},
    }
    record["gap"] = record["accuracy"] - record["shifted_accuracy"]
    cached.write_text(json.dumps(record, indent=1))
    return record


def area_shortcut(key, num_samples: int) -> dict:
    """Shape accuracy, in the training ranges and on the held-out ones, of a depth-2 decision tree on
    the object's pixel area alone (fit on other renders from the training ranges): what a network
    scores that reads the shape from the area instead of the form."""
    config = train_recognizer.get_config()

    def draw(k, ranges):
        factors = sample_factors(k, num_samples, ranges.to_dict())
        area = np.asarray(render(factors, config.resolution).object_mask).sum((1, 2))
        return area[:, None], np.asarray(factors["shape"])

    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(*draw(jax.random.fold_in(key, 1),
                                                                         config.train_ranges))
    return {name: float((tree.predict(x) == y).mean())
            for name, (x, y) in (("accuracy", draw(key, config.train_ranges)),
                                 ("shifted_accuracy", draw(key, config.shifted_ranges)))}


def correlations(rows: list[dict]) -> dict:
    """{measure: {outcome: {'pearson', 'pearson_p', 'spearman', 'spearman_p'}}} across the family
    (two-sided p-values; NaN where a column is constant)."""
    out = {}
    for m in MEASURES:
        x = np.array([r[m] for r in rows], np.float64)
        out[m] = {}
        for o in OUTCOMES:
            y = np.array([r[o] for r in rows], np.float64)
            if np.ptp(x) == 0 or np.ptp(y) == 0:
                out[m][o] = dict.fromkeys(("pearson", "pearson_p", "spearman", "spearman_p"), float("nan"))
                continue
            pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
            out[m][o] = {"pearson": float(pearson.statistic), "pearson_p": float(pearson.pvalue),
                         "spearman": float(spearman.statistic), "spearman_p": float(spearman.pvalue)}
    return out


def plot(rows: list[dict]) -> np.ndarray:
    """Each measure against the held-out accuracy, one panel per measure, a labelled point per network."""
    labels = [r["name"] for r in rows]
    return np.concatenate([scatter([r[m] for r in rows], [r["shifted_accuracy"] for r in rows],
                                   xlabel=m.replace("_", " "), ylabel="shifted accuracy", labels=labels,
                                   title=f"{m.replace('_', ' ')} vs held-out accuracy") for m in MEASURES], axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/recognition_study", help="members train here (resumable)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps of the base (default: the config's); members that change the length "
                             "keep their share of it")
    parser.add_argument("--samples", type=int, default=1000, help="probe images of each dissection")
    parser.add_argument("--test", type=int, default=4096, help="test images of each accuracy")
    parser.add_argument("--members", default=",".join(FAMILY), help="comma-separated names from the family")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test sets and the probe")
    parser.add_argument("--out", default=str(RESULTS / "recognition_study.json"))
    args = parser.parse_args(argv)
    names = [n for n in args.members.split(",") if n]
    unknown = [n for n in names if n not in FAMILY]
    if unknown:
        parser.error(f"--members: unknown {unknown}; expected names from {list(FAMILY)}")

    print(describe_environment())
    rows = []
    for i, name in enumerate(names):
        print(f"[{i + 1}/{len(names)}] {name} {FAMILY[name] or '(the base config)'}", flush=True)
        rows.append(member(name, FAMILY[name], args))
    header = ["network", "change", "accuracy", "shifted accuracy", "gap", "shape accuracy", "shifted shape accuracy",
              "detector fraction", "mean best IoU", "alignment drop", "unique concepts",
              *(f"{f} detectors" for f in FAMILIES)]
    table = [[r["name"], ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "-", round(r["accuracy"], 3),
              round(r["shifted_accuracy"], 3), round(r["gap"], 3),
              *(round(r["per_head"]["shape"][a], 3) if "shape" in r["per_head"] else "-"
                for a in ("accuracy", "shifted_accuracy")),
              round(r["detector_fraction"], 3), round(r["mean_best_iou"], 4), round(r["alignment_drop"], 3),
              r["unique_concepts"], *(r["families"][f] for f in FAMILIES)]
             for r in rows]
    trained = [r for r in rows if r["name"] != BASELINE]
    corr = correlations(trained) if len(trained) > 2 else {}
    corr_header = ["measure", "outcome", "Pearson r", "p", "Spearman rho", "p"]
    corr_table = [[m, o, round(c["pearson"], 2), round(c["pearson_p"], 3), round(c["spearman"], 2),
                   round(c["spearman_p"], 3)] for m, by in corr.items() for o, c in by.items()]
    area = area_shortcut(jax.random.key(args.seed), args.test)
    area_line = (f"An area shortcut (a depth-2 tree on the object's pixel area) scores shape accuracy "
                 f"{area['accuracy']:.3f} in the training ranges and {area['shifted_accuracy']:.3f} on the held-out "
                 f"ones.")
    report = "\n\n".join([markdown_table(header, table), area_line]
                           + ([markdown_table(corr_header, corr_table)] if corr_table else []))
    print("\n" + report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(report + "\n")
    if trained:
        out.with_suffix(".png").write_bytes(encode_png(plot(trained)))
    write_record(out, "recognition_study", steps=args.steps or train_recognizer.get_config().total_steps,
                 samples=args.samples, test=args.test, rows=rows, correlations=corr, area_shortcut=area)


if __name__ == "__main__":
    main()
