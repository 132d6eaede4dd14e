"""The performance campaign: every headline speed, each beside its reference, in one command.

    python benchmarks/campaign.py --device cpu --budget-s 1800 --stylegan2-repo DIR --stylegan3-repo DIR \
        --pggan-repo DIR --gld-repo DIR        # torch (and pytorch-pretrained-biggan) installed beside
    python benchmarks/campaign.py --device gpu --budget-s 480 ...   # the same on a GPU
    python benchmarks/campaign.py --smoke  # tiny models, seconds: CI runs it so that the campaign cannot rot

Sections, in this order (each figure is timed after a compiling warm-up: the median of the plan's
repeats, fewer once the timed calls have taken the plan's `repeat_budget_s`):
- generator: images/s of the whole forward pass (`zoo.py`'s models, random weights) per batch and
  precision, the reference's images/s in the same run (float32), their ratio, and the PSNR of
  bfloat16 images against float32 ones;
- utilisation: FLOPs per image from XLA's cost analysis of each compiled generator program, the
  FLOP/s it achieved, and the fraction of the device's peak, measured with a large matmul here;
- inversion: N targets per compiled step (w+, LPIPS on a real-width random VGG16) against the
  same recipe one target at a time; and NVIDIA's projector recipe (w + noise maps, LPIPS) per
  image beside `projector.project` itself (its VGG16 file is a download: a network of the same
  widths stands in, see `references.stand_in_vgg16`);
- learned: Voynov & Babenko's and DP-LaSE's harness steps (steps/s, generator evaluations/s) and
  GANLatentDiscovery's step on the reference generator of the same architecture (both with the
  `linear` deformator; DP-LaSE's reference step lives inside a CUDA-only script);
- jacobian: the image Jacobian w.r.t. w per sample, forward mode against reverse mode, and the
  reference's one backward pass per pixel (LowRankGAN), scaled from the passes timed;
- streaming: GANSpace's PCA samples/s, the sampled score table's samples/s (the shapes read-out),
  Network Dissection's units/s (the built-in shapes generator).

`--budget-s` bounds the run: each section gets its share (`SHARES`) of the budget left when it
starts, generator rows are measured breadth first (every model's first listed batch, precision
by precision, before any model's second), and every figure that could not be measured (budget,
no reference, an error) says why. Writes
`OUT/campaign.json` and `OUT/<section>.md` (`--out`, default `benchmarks/results/campaign`).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see train_step.py: before numpy / jax load OpenBLAS
if "--smoke" in sys.argv[1:]:  # a check, not a figure: XLA's cheapest compiles (a third of the run's time)
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import latentjax as lj
import references
import zoo
from directions import jacobian_times
from latentjax.directions import ganspace
from latentjax.inversion import Inverter
from latentjax.latent import latent_space, space_from_spec
from latentjax.metrics.dissection import dissect
from latentjax.metrics.lpips import STAGES, from_state_dicts
from latentjax.metrics.scorer import score_samples
from latentjax.nn.reconstructor import resolve
from latentjax.shapes.concepts import generator_probe
from latentjax.shapes.reading import readout_scorer
from timing import environment, median_seconds
from train_step import time_ours as time_learned_step

SECTIONS = ("generator", "utilisation", "inversion", "learned", "jacobian", "streaming")
# Each section's share of the budget left when it starts (utilisation only reads the generator's rows).
SHARES = {"generator": 4.0, "utilisation": 0.1, "inversion": 2.0, "learned": 1.5, "jacobian": 1.0, "streaming": 1.5}
LEARNED = {"voynov": "latentjax.directions.voynov", "dplase": "latentjax.directions.dplase"}

# What each mode measures. generator: (model, batches, precisions); inversion: (model, targets
# per step, steps); projector: (model, steps, our batch sizes); learned: (model, batch, steps,
# Voynov's reconstructor);
# jacobian: (model, columns, rows timed); streaming: GANSpace (model, samples), score and
# dissection samples.
PLANS = {
    "smoke": {
        "repeats": 1, "repeat_budget_s": None, "matmul": 256,
        "generator": [("stylegan2-tiny", (1, 2), ("float32", "bfloat16")), ("stylegan3-tiny", (1,), ("float32",)),
                      ("biggan-tiny", (1,), ("float32",)), ("pggan-tiny", (1,), ("float32",))],
        "inversion": [("stylegan2-tiny", (1, 2), 2)], "projector": [("stylegan2-tiny", 2, (1,))], "loss": "mse",
        "learned": [("stylegan2-tiny", 4, 2, "lenet")], "jacobian": [("stylegan2-tiny", 8, 16)],
        "ganspace": ("stylegan2-tiny", 512), "score_samples": 64, "dissect_samples": 32,
    },
    "cpu": {
        "repeats": 3, "repeat_budget_s": 10.0, "matmul": 2048, "loss": "lpips",
        "generator": [("stylegan2-256", (1,), ("float32", "bfloat16")), ("stylegan2-256", (4, 16), ("float32",)),
                      ("stylegan2-1024", (1,), ("float32",)), ("stylegan3-t-256", (1,), ("float32",)),
                      ("stylegan3-r-256", (1,), ("float32",)), ("biggan-deep-128", (1, 4), ("float32",)),
                      ("biggan-deep-256", (1,), ("float32",)), ("biggan-deep-512", (1,), ("float32",)),
                      ("pggan-256", (1, 4, 16), ("float32",))],
        "inversion": [("stylegan2-32", (1, 8, 64), 10), ("stylegan2-256", (1, 4), 2)],
        "projector": [("stylegan2-256", 3, (1, 4))],
        "learned": [("stylegan2-32", 32, 5, "resnet18"), ("stylegan2-256", 4, 2, "resnet18")],
        "jacobian": [("stylegan2-32", 64, 1024), ("stylegan2-256", 8, 8)],
        "ganspace": ("stylegan2-256", 100_000), "score_samples": 4096, "dissect_samples": 1024,
    },
    "gpu": {
        "repeats": 10, "repeat_budget_s": 10.0, "matmul": 8192, "loss": "lpips",
        "generator": [(name, (16, 1, 64, 4), ("float32", "bfloat16"))  # batches by priority: 16 for all first
                      for name in ("stylegan2-256", "stylegan2-1024", "stylegan3-t-256", "stylegan3-r-256",
                                   "biggan-deep-128", "biggan-deep-256", "biggan-deep-512", "pggan-256")],
        "inversion": [("stylegan2-32", (1, 8, 64), 50), ("stylegan2-256", (1, 8, 64), 20)],
        "projector": [("stylegan2-256", 50, (1, 8, 64))],
        "learned": [("stylegan2-32", 32, 20, "resnet18"), ("stylegan2-256", 32, 10, "resnet18")],
        "jacobian": [("stylegan2-256", 512, 4096)],
        "ganspace": ("stylegan2-256", 1_000_000), "score_samples": 65_536, "dissect_samples": 16_384,
    },
}

COLUMNS = {  # section -> (key, header, format) of its Markdown table
    "generator": [("model", "model", "{}"), ("batch", "batch", "{}"), ("precision", "precision", "{}"),
                  ("ours_img_s", "latentjax img/s", "{:.2f}"), ("reference_img_s", "reference img/s", "{:.2f}"),
                  ("ratio", "ratio", "{:.2f}x"), ("psnr_db", "PSNR vs float32", "{:.1f} dB")],
    "utilisation": [("program", "program", "{}"), ("precision", "precision", "{}"),
                    ("gflop_per_item", "GFLOP / image", "{:.2f}"), ("achieved_tflop_s", "achieved TFLOP/s", "{:.3f}"),
                    ("peak_tflop_s", "matmul peak TFLOP/s", "{:.3f}"), ("fraction_of_peak", "of peak", "{:.1%}")],
    "inversion": [("model", "model", "{}"), ("recipe", "recipe", "{}"), ("targets", "targets / step", "{}"),
                  ("steps", "steps", "{}"), ("target_steps_s", "target-steps/s", "{:.3f}"),
                  ("seconds_per_image", "s / image", "{:.2f}"), ("vs_loop", "vs one at a time", "{:.2f}x"),
                  ("reference_seconds_per_image", "reference s / image", "{:.2f}"), ("ratio", "ratio", "{:.2f}x")],
    "learned": [("method", "method", "{}"), ("model", "model", "{}"), ("batch", "batch", "{}"),
                ("steps_s", "steps/s", "{:.3f}"), ("g_evals_s", "G evals/s", "{:.1f}"),
                ("reference_steps_s", "reference steps/s", "{:.3f}"), ("ratio", "ratio", "{:.2f}x")],
    "jacobian": [("model", "model", "{}"), ("dim", "D", "{}"), ("pixels", "pixels", "{}"),
                 ("forward_s", "forward s / sample", "{:.3g}"), ("reverse_s", "jacrev s / sample", "{:.3g}"),
                 ("reference_s", "reference s / sample", "{:.3g}"), ("ratio", "reference / forward", "{:.0f}x")],
    "streaming": [("job", "job", "{}"), ("model", "model", "{}"), ("items", "items", "{}"),
                  ("rate", "rate", "{:.1f}"), ("unit", "unit", "{}")],
}


class Campaign:
    """The rows of every section, measured in order until the budget is spent."""

    def __init__(self, args, plan: dict):
        self.args, self.plan = args, plan
        self.end = self.deadline = time.monotonic() + args.budget_s
        self.rows: dict[str, list[dict]] = {s: [] for s in SECTIONS}
        self.device = references.torch_device(args.device) if _has_torch() else "cpu"
        self._references: dict[str, object] = {}
        self._generators: dict[str, object] = {}
        self.peaks: dict[str, dict] = {}  # measure_peaks, when the utilisation section runs

    def generator(self, name: str):
        """Our generator `name` (random weights), initialised once per campaign."""
        if name not in self._generators:
            self._generators[name] = zoo.init(name)
        return self._generators[name]

    def begin_section(self, section: str, remaining: list[str]):
        """Give `section` its share of the budget left, so that a slow early section cannot leave the
        later ones unmeasured; what a section does not use passes on to the next."""
        self.deadline = section_deadline(time.monotonic(), self.end, section, remaining)

    def spent(self) -> bool:
        return time.monotonic() > self.deadline

    def attempt(self, row: dict, label: str, measure) -> bool:
        """Add `measure()`'s fields to `row`, or a note saying why `label` was not measured."""
        if self.spent():
            row.setdefault("notes", []).append(f"{label}: not measured, budget spent")
            return False
        try:
            row.update(measure())
            return True
        except references.Unavailable as e:
            row.setdefault("notes", []).append(f"{label}: {e}")
        except Exception as e:  # one failed figure must not stop the campaign: it says why instead
            row.setdefault("notes", []).append(f"{label}: failed ({type(e).__name__}: {e})")
        return False

    def add(self, section: str, row: dict):
        self.rows[section].append(row)
        print(f"{section:<11} " + "  ".join(f"{k}={_short(v)}" for k, v in row.items()), flush=True)

    def reference(self, name: str, build):
        """The reference model `name` built once (or the Unavailable reason, raised each time)."""
        if name not in self._references:
            try:
                self._references[name] = build()
            except references.Unavailable as e:
                self._references[name] = e
            except Exception as e:  # a checkout that imports but cannot build this model
                self._references[name] = references.Unavailable(f"cannot build {name} ({type(e).__name__}: {e})")
        found = self._references[name]
        if isinstance(found, Exception):
            raise found
        return found

    def reference_generator(self, name: str):
        family, config = zoo.family(name), zoo.config(name)
        build = {"stylegan2": lambda: references.stylegan2(self.args.stylegan2_repo, config, self.device),
                 "stylegan3": lambda: references.stylegan3(self.args.stylegan3_repo, config, self.device),
                 "biggan": lambda: references.biggan(config, self.device),
                 "pggan": lambda: references.pggan(self.args.pggan_repo, config, self.device)}[family]
        return self.reference(name, build)


def section_deadline(now: float, end: float, section: str, remaining: list[str]) -> float:
    """When `section` (the first of the `remaining` sections) stops measuring: its `SHARES` weight's
    part of the time left until `end`."""
    return now + max(end - now, 0.0) * SHARES[section] / sum(SHARES[s] for s in remaining)


def generator_order(plan: list) -> list[tuple[str, int, str]]:
    """The generator plan's (model, batch, precision) rows, breadth first: every model's first batch
    in its first precision, then in the next, before any model's second batch, so that a budget
    spent part-way costs batch sizes and precisions before it costs a model."""
    keyed = [((rank, p, m), (name, batch, precision)) for m, (name, batches, precisions) in enumerate(plan)
             for rank, batch in enumerate(batches) for p, precision in enumerate(precisions)]
    return [row for _, row in sorted(keyed)]


def _has_torch() -> bool:
    try:
        references.torch_module()
        return True
    except references.Unavailable:
        return False


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- sections --------------------------------------------------------------------------------------
def generator_section(c: Campaign):
    repeats, budget = c.plan["repeats"], c.plan["repeat_budget_s"]
    float32_images = {}  # (model, batch): float32 images, the bfloat16 rows' PSNR reference
    for name, batch, precision in generator_order(c.plan["generator"]):
        row = {"model": name, "batch": batch, "precision": precision}

        def ours():
            G = c.generator(name)
            program, inputs = zoo.generate_program(G, batch, precision)
            lowered = program.lower(G.params, *inputs)
            compiled = lowered.compile()
            seconds = median_seconds(lambda: compiled(G.params, *inputs), repeats, budget)
            flops = lowered_flops(lowered)
            return {"ours_img_s": batch / seconds, "images": compiled(G.params, *inputs),
                    "gflop_per_item": None if flops is None else flops / batch / 1e9}

        if c.attempt(row, "latentjax", ours):
            images = row.pop("images")
            if precision == "float32":
                float32_images[name, batch] = images
            elif (name, batch) in float32_images:
                row["psnr_db"] = psnr_db(images, float32_images[name, batch])
        if precision != "float32":
            row.setdefault("notes", []).append("reference: timed in float32 only")
        else:
            c.attempt(row, "reference", lambda: {"reference_img_s": references.time_generator(
                zoo.family(name), c.reference_generator(name), batch, repeats, c.device,
                zoo.TRUNCATION[zoo.family(name)], getattr(zoo.config(name), "num_classes", 0), budget)})
        if row.get("reference_img_s") and row.get("ours_img_s"):
            row["ratio"] = row["ours_img_s"] / row["reference_img_s"]
        c.add("generator", row)
    table_order = {(name, batch, precision): (m, batch, p) for m, (name, batches, precisions)
                   in enumerate(c.plan["generator"]) for batch in batches for p, precision in enumerate(precisions)}
    c.rows["generator"].sort(key=lambda r: table_order[r["model"], r["batch"], r["precision"]])  # model by model


def lowered_flops(lowered) -> float | None:
    """FLOPs of one call of a program, from XLA's cost analysis of it as lowered: the same count on
    every device (on a GPU, the compiled program's convolutions are cuDNN calls that the analysis of
    the compiled program does not count: 0.5 instead of 90 GFLOP per StyleGAN2 image at 256)."""
    analysis = lowered.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def psnr_db(images, reference) -> float:
    """PSNR of `images` against `reference`, both in [-1, 1] (peak-to-peak 2)."""
    mse = float(jnp.mean(jnp.square(images.astype(jnp.float32) - reference.astype(jnp.float32))))
    return float("inf") if mse == 0 else 10 * float(np.log10(4.0 / mse))


def matmul_peak(n: int, precision: str, repeats: int) -> float:
    """FLOP/s of an n x n x n matmul in `precision` here: the device's practical peak."""
    dtype = zoo.PRECISIONS[precision]
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    matmul = jax.jit(lambda a, b: a @ b)
    return 2 * n ** 3 / median_seconds(lambda: matmul(a, b), max(repeats, 3))


def measure_peaks(c: Campaign) -> dict:
    """{precision: {"peak": FLOP/s} or {"notes": why not}} for the generator plan's precisions,
    measured before any section so that a spent budget never leaves the utilisation table without them."""
    peaks = {}
    for precision in dict.fromkeys(p for _, _, precisions in c.plan["generator"] for p in precisions):
        peaks[precision] = {}
        c.attempt(peaks[precision], "matmul peak",
                  lambda: {"peak": matmul_peak(c.plan["matmul"], precision, c.plan["repeats"])})
    return peaks


def utilisation_section(c: Campaign):
    for row in c.rows["generator"]:
        if not row.get("gflop_per_item") or not row.get("ours_img_s"):
            continue
        best = max((r for r in c.rows["generator"] if r["model"] == row["model"]
                    and r["precision"] == row["precision"] and r.get("ours_img_s")), key=lambda r: r["ours_img_s"])
        if row is not best:  # the batch with the best throughput, per model and precision
            continue
        out = {"program": f"{row['model']} generate, batch {row['batch']}", "precision": row["precision"],
               "gflop_per_item": row["gflop_per_item"]}
        out["achieved_tflop_s"] = row["gflop_per_item"] * row["ours_img_s"] / 1e3
        peak = c.peaks[row["precision"]]
        if "peak" in peak:
            out["peak_tflop_s"] = peak["peak"] / 1e12
            out["fraction_of_peak"] = out["achieved_tflop_s"] / out["peak_tflop_s"]
        else:
            out["notes"] = peak.get("notes", [])
        c.add("utilisation", out)


def random_vgg16_lpips(seed: int = 0):
    """LPIPS with a real-width VGG16 trunk (He-normal random weights) and random positive lin heads:
    the cost of the real network without its weights (which are a download)."""
    rng = np.random.default_rng(seed)
    vgg, c_in = {}, 3
    for stage, widths in zip(STAGES, references.VGG16_WIDTHS):
        for i, width in zip(stage, widths):
            vgg[f"features.{i}.weight"] = (rng.normal(size=(width, c_in, 3, 3)) * np.sqrt(2 / (9 * c_in))).astype(np.float32)
            vgg[f"features.{i}.bias"] = np.zeros(width, np.float32)
            c_in = width
    lin = {f"lin{k}.model.1.weight": rng.uniform(0.01, 1.0, (1, widths[-1], 1, 1)).astype(np.float32)
           for k, widths in enumerate(references.VGG16_WIDTHS)}
    return from_state_dicts(vgg, lin)


def inversion_targets(G, n: int) -> jax.Array:
    """n generated images to invert (one compile per model: callers slice the largest batch)."""
    return jnp.clip(G.generate(G.params, jax.random.normal(jax.random.key(1), (n, G.z_dim)), truncation_psi=0.5), -1, 1)


def inversion_seconds(G, lpips, targets, steps: int, repeats: int, budget_s: float | None, **recipe) -> float:
    """Median seconds of one `steps`-step inversion of `targets` (after a compiling call); the LPIPS
    loss with `lpips`, else MSE."""
    inverter = Inverter(G, steps=steps, loss="lpips" if lpips else "mse", lpips=lpips, **recipe)
    return median_seconds(lambda: inverter(targets, jax.random.key(2), progress=False).latents, repeats, budget_s)


def inversion_section(c: Campaign):
    repeats, budget = c.plan["repeats"], c.plan["repeat_budget_s"]
    lpips = random_vgg16_lpips() if c.plan["loss"] == "lpips" else None
    loss = "LPIPS" if lpips else "MSE"
    for name, ns, steps in c.plan["inversion"]:
        G, single = c.generator(name), None
        targets = inversion_targets(G, max(ns))
        for n in ns:
            row = {"model": name, "recipe": f"w+, {loss}", "targets": n, "steps": steps}
            if c.attempt(row, "latentjax", lambda: {"target_steps_s": n * steps / inversion_seconds(
                    G, lpips, targets[:n], steps, repeats, budget, space="w+")}):
                single = row["target_steps_s"] if n == 1 else single
                row["seconds_per_image"] = steps / row["target_steps_s"]
                if single:
                    row["vs_loop"] = row["target_steps_s"] / single
            c.add("inversion", row)
    for name, steps, ns in c.plan["projector"]:
        G = c.generator(name)
        targets, reference = inversion_targets(G, max(ns)), {}
        c.attempt(reference, "NVIDIA projector", lambda: {"reference_seconds_per_image": references.projector_seconds(
            c.args.stylegan2_repo, c.reference_generator(name), steps, c.device)})
        for n in ns:
            row = {"model": name, "recipe": f"projector: w + noise, {loss}", "targets": n, "steps": steps, **reference}
            if c.attempt(row, "latentjax", lambda: {"seconds_per_image": inversion_seconds(
                    G, lpips, targets[:n], steps, 1, budget, space="w", optimize_noise=True) / n}):
                row["target_steps_s"] = steps / row["seconds_per_image"]
                if row.get("reference_seconds_per_image"):
                    row["ratio"] = row["reference_seconds_per_image"] / row["seconds_per_image"]
            c.add("inversion", row)


def learned_section(c: Campaign):
    repeats, budget = c.plan["repeats"], c.plan["repeat_budget_s"]
    for name, batch, steps, reconstructor in c.plan["learned"]:
        G = c.generator(name)
        for method, module in LEARNED.items():
            row = {"method": method, "model": name, "batch": batch}
            overrides = ({"deformator": "linear", "reconstructor": reconstructor} if method == "voynov"
                         else {"subspace_steps": 0})

            def ours():
                steps_s, evals, used = time_learned_step(module, space_from_spec(G, {"name": "w"}), batch, steps,
                                                         overrides)
                return {"steps_s": steps_s, "g_evals_s": steps_s * evals, "batch": used}

            c.attempt(row, "latentjax", ours)
            if method == "voynov":
                kind = resolve(reconstructor, G.img_resolution)[0]  # the reconstructor ours used
                c.attempt(row, "GANLatentDiscovery", lambda: {"reference_steps_s": references.voynov_step_rate(
                    c.args.gld_repo, references.stylegan2_w_decoder(c.reference_generator(name)), G.w_dim, kind,
                    batch, repeats, c.device, budget)})
            else:
                row.setdefault("notes", []).append("reference: DP-LaSE's step lives inside its training script "
                                                   "(maximum_traverse_for_PGGAN.py, CUDA only), not importable")
            if row.get("reference_steps_s") and row.get("steps_s"):
                row["ratio"] = row["steps_s"] / row["reference_steps_s"]
            c.add("learned", row)


def jacobian_section(c: Campaign):
    for name, columns, rows in c.plan["jacobian"]:
        G = c.generator(name)
        row = {"model": name}
        c.attempt(row, "latentjax", lambda: jacobian_times(G, latent_space(G, "w+"), 16, columns, rows,
                                                           c.plan["repeats"], c.plan["repeat_budget_s"]))
        c.attempt(row, "LowRankGAN backward passes", lambda: {"reference_s": G.img_resolution ** 2 *
                  references.backward_pass_seconds(c.reference_generator(name), c.device)})
        if row.get("reference_s") and row.get("forward_s"):
            row["ratio"] = row["reference_s"] / row["forward_s"]
        c.add("jacobian", row)


def timed_rate(run, items: int) -> float:
    """items / seconds of `run()` (its compilation paid by an earlier call of the caller's)."""
    start = time.perf_counter()
    jax.block_until_ready(run())
    return items / (time.perf_counter() - start)


def streaming_section(c: Campaign):
    name, samples = c.plan["ganspace"]
    row = {"job": "GANSpace PCA (w, k 10)", "model": name, "items": samples, "unit": "samples/s"}

    def pca():
        space = latent_space(c.generator(name), "w+")
        run = lambda n: ganspace(space, k=10, num_samples=n, batch_size=1000, progress=False).vectors
        run(1000)
        return {"rate": timed_rate(lambda: run(samples), samples)}

    c.attempt(row, "latentjax", pca)
    c.add("streaming", row)

    shapes = lj.load_generator("builtin:shapes")
    n = c.plan["score_samples"]
    row = {"job": "score table (shapes read-out)", "model": "builtin:shapes", "items": n, "unit": "samples/s"}

    def score():
        scorer = readout_scorer()
        run = lambda m: score_samples(shapes, scorer, m, batch_size=min(n, 256), progress=False)[1]
        run(min(n, 256))
        return {"rate": timed_rate(lambda: run(n), n)}

    c.attempt(row, "latentjax", score)
    c.add("streaming", row)

    n = c.plan["dissect_samples"]
    layer = shapes.layer_names[len(shapes.layer_names) // 2]
    row = {"job": f"Network Dissection ({layer})", "model": "builtin:shapes", "items": n, "unit": "units/s"}

    def dissection():
        space = space_from_spec(shapes, {"name": "w"})
        probe = lambda m: generator_probe(space, shapes.params, layer, jax.random.key(0), num_samples=m,
                                          batch_size=min(m, 256), valid_tol=lj.shapes.reading.VALID_TOL)
        dissect(probe(min(n, 256)), progress=False)
        start = time.perf_counter()
        result = dissect(probe(n), progress=False)
        units = result.iou.shape[0]
        return {"rate": units / (time.perf_counter() - start), "items": f"{units} units x {n} samples"}

    c.attempt(row, "latentjax", dissection)
    c.add("streaming", row)


SECTION_RUNS = {"generator": generator_section, "utilisation": utilisation_section, "inversion": inversion_section,
                "learned": learned_section, "jacobian": jacobian_section, "streaming": streaming_section}


# --- output ----------------------------------------------------------------------------------------
def markdown(section: str, rows: list[dict]) -> str:
    """The section's table; a cell that was not measured is '-', and the notes say why."""
    columns = COLUMNS[section]
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |",
             "|" + "|".join("---" if fmt == "{}" else "---:" for _, _, fmt in columns) + "|"]
    notes = []
    for row in rows:
        cells = [("-" if row.get(key) is None else fmt.format(row[key])) for key, _, fmt in columns]
        if row.get("notes"):
            text = "; ".join(row["notes"])
            if text not in notes:
                notes.append(text)
            cells[0] += f" [{notes.index(text) + 1}]"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + [f"[{i}] {text}" for i, text in enumerate(notes, 1)]) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "gpu"), default=None,
                        help="the plan to run (default: the device JAX sees)")
    parser.add_argument("--smoke", action="store_true", help="tiny models and few repeats, seconds: a check, not a figure")
    parser.add_argument("--budget-s", type=float, default=1800.0, help="stop measuring after this many seconds")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--stylegan2-repo", default=None, help="NVlabs/stylegan2-ada-pytorch checkout")
    parser.add_argument("--stylegan3-repo", default=None, help="NVlabs/stylegan3 checkout")
    parser.add_argument("--pggan-repo", default=None, help="facebookresearch/pytorch_GAN_zoo checkout")
    parser.add_argument("--gld-repo", default=None, help="anvoynov/GANLatentDiscovery checkout")
    parser.add_argument("--out", default="benchmarks/results/campaign")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if jax.default_backend() == "cpu" else "gpu")
    if args.device == "gpu" and jax.default_backend() != "gpu":
        parser.error(f"--device gpu: JAX sees no GPU here (backend {jax.default_backend()!r})")
    mode = "smoke" if args.smoke else args.device
    jax.config.update("jax_threefry_partitionable", True)

    started = time.monotonic()
    campaign = Campaign(args, PLANS[mode])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"campaign ({mode}, budget {args.budget_s:.0f} s) on {environment()['device']}", flush=True)
    if "utilisation" in args.sections:
        campaign.peaks = measure_peaks(campaign)
    for done, section in enumerate(args.sections, 1):
        start = time.monotonic()
        campaign.begin_section(section, args.sections[done - 1:])
        SECTION_RUNS[section](campaign)
        print(f"{section}: {time.monotonic() - start:.0f} s", flush=True)
        # Written after every section, so that a run stopped part-way keeps the sections it measured.
        (out / f"{section}.md").write_text(markdown(section, campaign.rows[section]))
        record = {"benchmark": "campaign", "mode": mode, **environment(), "load_average": os.getloadavg(),
                  "budget_s": args.budget_s, "seconds": time.monotonic() - started, "torch_device": campaign.device,
                  "sections_done": args.sections[:done], "sections": campaign.rows}
        (out / "campaign.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(f"\n{time.monotonic() - started:.0f} s; wrote {out}/campaign.json and one .md per section")


if __name__ == "__main__":
    main()
