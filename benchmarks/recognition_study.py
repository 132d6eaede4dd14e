"""Does unit-level disentanglement go with accuracy and generalisation? A family of small recognition
networks trained on the shapes world, each dissected against the world's exact concepts.

    OPENBLAS_NUM_THREADS=1 python benchmarks/recognition_study.py --workdir runs/recognition_study
    python benchmarks/recognition_study.py --workdir out/study --steps 20 --samples 64   # a quick look

Every member is `configs/train_recognizer.py` (shape and hue-bin heads on 32x32 renders with
scale in [0, 0.6)) with one change from the base: its seed, width, weight decay or number of
training images. Per member: accuracy on fresh renders from the training ranges and from the
held-out scales [0.6, 1) (the generalisation gap is their difference, mean over the heads), and
Network Dissection of every conv layer (`latentjax dissect`'s `dissect_layers`, rotated too):
the fraction of detector units, their mean best IoU, the drop of the detector fraction after a
random rotation of each layer's basis, and the detectors by concept family. The base network at
initialisation ('untrained') is a reference row. Prints the table and the Pearson and Spearman
correlations across the trained members; writes JSON, a markdown table and a scatter plot. Members train in
`WORKDIR/<name>` (a killed study resumes; finished members are not redone).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "configs"))

import train_recognizer  # noqa: E402
from latentjax.nn.recognizer import Recognizer, load_recognizer, save_recognizer  # noqa: E402
from latentjax.programs.dissect import FAMILIES, dissect_layers  # noqa: E402
from latentjax.shapes.recognition import accuracy  # noqa: E402
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
    "width4": {"width": 4},
    "width8": {"width": 8},
    "width32": {"width": 32},
    "decay0.05": {"weight_decay": 0.05},
    "decay0.5": {"weight_decay": 0.5},
    "data256": {"num_train": 256},
    "data1024": {"num_train": 1024},
    "data4096": {"num_train": 4096},
}
MEASURES = ("detector_fraction", "mean_best_iou", "alignment_drop")
OUTCOMES = ("accuracy", "shifted_accuracy", "gap")


def member(name: str, changes: dict, args) -> dict:
    """Train (or resume) one member, then score and dissect it; cached in WORKDIR/<name>/study.json."""
    workdir = Path(args.workdir) / name
    cached = workdir / "study.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    config = train_recognizer.get_config()
    config.update(total_steps=args.steps, ckpt_every=max(args.steps // 4, 1), eval_every=args.steps)
    config.update(changes)
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
    record = {
        "name": name, "changes": changes, "units": units,
        "accuracy": float(np.mean(list(acc.values()))), "shifted_accuracy": float(np.mean(list(shifted.values()))),
        "per_head": {h: {"accuracy": acc[h], "shifted_accuracy": shifted[h]} for h in heads},
        "detector_fraction": fraction,
        "mean_best_iou": sum(s["mean_best_iou"] * s["units"] for s in summaries) / units,
        "alignment_drop": fraction - sum(r["detectors"] for r in rotated) / units,
        "families": {f: sum(s["families"][f] for s in summaries) for f in FAMILIES},
        "layers": {layer: {"summary": e["summary"], "rotated_summary": e["rotated_summary"]}
                   for layer, e in run["layers"].items()},
    }
    record["gap"] = record["accuracy"] - record["shifted_accuracy"]
    cached.write_text(json.dumps(record, indent=1))
    return record


def ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values))
    out[order] = np.arange(len(values))
    for v in np.unique(values):  # ties share their mean rank
        out[values == v] = out[values == v].mean()
    return out


def correlations(rows: list[dict]) -> dict:
    """{measure: {outcome: {'pearson', 'spearman'}}} across the family."""
    out = {}
    for m in MEASURES:
        x = np.array([r[m] for r in rows])
        out[m] = {}
        for o in OUTCOMES:
            y = np.array([r[o] for r in rows])
            pearson = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")
            rx, ry = ranks(x), ranks(y)
            spearman = float(np.corrcoef(rx, ry)[0, 1]) if rx.std() > 0 and ry.std() > 0 else float("nan")
            out[m][o] = {"pearson": pearson, "spearman": spearman}
    return out


def plot(rows: list[dict]) -> np.ndarray:
    """Detector fraction against each outcome, one panel per outcome, a labelled point per network."""
    labels = [r["name"] for r in rows]
    return np.concatenate([scatter([r["detector_fraction"] for r in rows], [r[o] for r in rows],
                                   xlabel="detector fraction", ylabel=o.replace("_", " "), labels=labels,
                                   title=f"detector units vs {o.replace('_', ' ')}") for o in OUTCOMES], axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/recognition_study", help="members train here (resumable)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of every member")
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
    header = ["network", "change", "accuracy", "shifted accuracy", "gap", "detector fraction", "mean best IoU",
              "alignment drop", *(f"{f} detectors" for f in FAMILIES)]
    table = [[r["name"], ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "-", round(r["accuracy"], 3),
              round(r["shifted_accuracy"], 3), round(r["gap"], 3), round(r["detector_fraction"], 3),
              round(r["mean_best_iou"], 4), round(r["alignment_drop"], 3), *(r["families"][f] for f in FAMILIES)]
             for r in rows]
    trained = [r for r in rows if r["name"] != BASELINE]
    corr = correlations(trained) if len(trained) > 2 else {}
    corr_table = [[m, o, round(c["pearson"], 2), round(c["spearman"], 2)]
                  for m, by in corr.items() for o, c in by.items()]
    print("\n" + markdown_table(header, table))
    if corr_table:
        print("\n" + markdown_table(["measure", "outcome", "Pearson r", "Spearman rho"], corr_table))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown_table(header, table) + "\n\n" + (markdown_table(
        ["measure", "outcome", "Pearson r", "Spearman rho"], corr_table) + "\n" if corr_table else ""))
    if trained:
        out.with_suffix(".png").write_bytes(encode_png(plot(trained)))
    write_record(out, "recognition_study", steps=args.steps, samples=args.samples, test=args.test, rows=rows,
                 correlations=corr)


if __name__ == "__main__":
    main()
