"""Steps/s and generator evaluations/s of the learned direction methods' train steps, on the harness.

    python benchmarks/train_step.py                      # fixtures + 256x256 StyleGAN2, 1 and 8 devices
    python benchmarks/train_step.py --quick              # the 32 px StyleGAN2 fixture, a few small steps
    python benchmarks/train_step.py --reference DIR      # + GANLatentDiscovery's step, same run (needs torch)

Every learned method module with the `build_task` contract (`latentjax.directions.learned`) is
timed with its default settings (the harness's batch: the method's default, or `--batch`); a
module that does not import yet is skipped with the reason. Steps run through
`latentjax.train.trainer.train` itself (jit, shardings, donated state; no evaluation, export or
sample grid): steps/s is the harness's own `time/step_s` over all steps after the first (which
compiles). Generator evaluations per step count the samples a step passes through
`space.decode` / `space.features` (images or feature maps), read off one trace of the step.

Generators: the test fixtures (32 px StyleGAN2 in `w`, 128 px BigGAN-deep in `z` with class 0,
64 px PGGAN in `z`) and a 256x256 config-f StyleGAN2 with random weights (as in
`zoo.py`). Device counts: 1, and 8 simulated CPU devices (this script in a
subprocess with `XLA_FLAGS=--xla_force_host_platform_device_count=8`).

`--reference DIR` (a GANLatentDiscovery checkout; its modules are imported from there at run time)
times its train step as `trainer.py` runs it (shifts, deformator, G(z) and G(z + A(eps e_k)),
reconstructor, CE + 0.25 L1, backward, both Adam steps) beside ours, for each image size. Its
generators do not run here (its StyleGAN2 needs CUDA extensions; the others are not our
architectures), so both sides use the same stand-in generator, image = tanh(latent @ A) with a
fixed random A, and both use the `linear` deformator (its `ortho` allocates on CUDA): the rows
compare everything but the generator, whose speed `campaign.py` compares. Prints a
table and writes JSON.

OpenBLAS runs single-threaded here (OPENBLAS_NUM_THREADS=1 unless set): XLA's CPU programs call
LAPACK through it (the `ortho` deformator's matrix exponential solves a linear system), and its
spinning worker threads make each such call 10-300 times slower on a busy or multi-device CPU.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy / jax load OpenBLAS (see the docstring)

import argparse
import dataclasses
import importlib
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import latentjax as lj
from latentjax.config import ConfigMixin
from latentjax.directions.learned import train_config
from latentjax.latent import LatentSpace, space_from_spec, standard_normal
from latentjax.nn.reconstructor import resolve
from latentjax.train.metrics import read_metrics
from latentjax.train.trainer import train
import references
import zoo
from timing import describe_environment, write_record

METHODS = ("latentjax.directions.voynov", "latentjax.directions.dplase")
FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures"
MODELS = {  # name -> (checkpoint, or None for random weights; latent space spec)
    "fixture-ada32": (FIXTURES / "stylegan2" / "ada_s32_snapshot.pkl", {"name": "w"}),
    "fixture-biggan128": (FIXTURES / "biggan" / "deep_tiny", {"name": "z", "class_index": 0}),
    "fixture-pggan64": (FIXTURES / "pggan" / "pgan_tiny.pth", {"name": "z"}),
    "config-f-256": (None, {"name": "w"}),
}
STAND_INS = {  # reference rows: name -> (latent dim, resolution), the sizes of the models above
    "stand-in-64d-32px": (64, 32),
    "stand-in-512d-256px": (512, 256),
}
SIMULATED_DEVICES = 8


# --- our steps -------------------------------------------------------------------------------------
def settings_class(module):
    """The method's settings dataclass: the ConfigMixin dataclass of the module with a `steps` field."""
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and dataclasses.is_dataclass(obj) and issubclass(obj, ConfigMixin)
             and obj.__module__ == module.__name__ and "steps" in {f.name for f in dataclasses.fields(obj)}]
    if len(found) != 1:
        raise ValueError(f"{module.__name__}: expected one settings dataclass with a `steps` field, found "
                         f"{[cls.__name__ for cls in found]}")
    return found[0]


def load_generator(name: str):
    path = MODELS[name][0]
    return zoo.init("stylegan2-256") if path is None else lj.load_generator(path)


def count_generator_evals(space: LatentSpace):
    """Wrap `space.decode` / `space.features` so that they count the samples they get; returns the counter."""
    counter = {"samples": 0}
    for name in ("decode", "features"):
        original = getattr(space, name)

        def counted(params, latent, *args, _original=original, **kwargs):
            counter["samples"] += latent.shape[0]
            return _original(params, latent, *args, **kwargs)

        setattr(space, name, counted)
    return counter


def time_ours(module_name: str, space: LatentSpace, batch: int | None, steps: int, overrides: dict | None = None):
    """(steps/s, generator evaluations per step, batch) of one method's harness step on `space`."""
    module = importlib.import_module(module_name)
    cls = settings_class(module)
    fields = {**(overrides or {}), "steps": steps + 1}
    if batch:
        fields["batch_size"] = batch
    settings = dataclasses.replace(cls(), **fields)
    counter = count_generator_evals(space)
    task = module.build_task(space, settings)
    counter["samples"] = 0
    state = jax.eval_shape(task.init, jax.random.key(0))
    jax.eval_shape(task.step, state, None, jax.random.key(0), jnp.int32(0))
    evals = counter["samples"]
    task = dataclasses.replace(task, evaluate=None, export=None, sample=None)
    config = train_config(module_name, settings, log_every=steps + 1, ckpt_every=0)
    with tempfile.TemporaryDirectory(prefix="train-step-") as workdir:
        train(config, workdir, task=task)
        step_s = [r["time/step_s"] for r in read_metrics(workdir) if "time/step_s" in r][-1]
    return 1.0 / step_s, evals, settings.batch_size


def our_rows(args) -> list[dict]:
    rows, generators = [], {}
    for module_name in args.methods:
        try:
            importlib.import_module(module_name)
        except Exception as e:  # another method may not exist yet: report and go on
            print(f"{module_name}: skipped, does not import ({e!r})", file=sys.stderr)
            continue
        for model in args.models:
            if model not in generators:
                generators[model] = load_generator(model)
            space = space_from_spec(generators[model], MODELS[model][1])  # fresh: its methods get wrapped
            try:
                steps_per_s, evals, batch = time_ours(module_name, space, args.batch, args.steps)
            except ValueError as e:  # a method that does not apply to this generator
                print(f"{module_name} on {model}: skipped ({e})", file=sys.stderr)
                continue
            rows.append({"method": module_name.rsplit(".", 1)[-1], "model": model, "devices": jax.device_count(),
                         "batch": batch, "steps_per_s": steps_per_s, "generator_evals_per_step": evals,
                         "generator_evals_per_s": steps_per_s * evals})
            print(format_row(rows[-1]), flush=True)
    return rows


def simulated_rows(argv: list[str]) -> list[dict]:
    """Our rows on SIMULATED_DEVICES CPU devices: this script in a subprocess."""
    with tempfile.TemporaryDirectory(prefix="train-step-") as tmp:
        out = Path(tmp) / "rows.json"
        env = {**os.environ, "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={SIMULATED_DEVICES}"}
        subprocess.run([sys.executable, __file__, *argv, "--child-out", str(out)], env=env, check=True)
        return json.loads(out.read_text())


# --- the reference -------------------------------------------------------------------------------
class StandInSpace(LatentSpace):
    """A stand-in generator, image = tanh(latent @ A) as [N, H, W, 3], A fixed [D, H * W * 3] / sqrt(D)."""

    family, names = "stand-in", ("z",)

    def __init__(self, dim: int, resolution: int):
        matrix = np.random.default_rng(0).standard_normal((dim, resolution * resolution * 3), np.float32)
        generator = type("StandIn", (), {"params": {"A": jnp.asarray(matrix / math.sqrt(dim))}, "c_dim": 0})()
        super().__init__(generator, "z", {})
        self.resolution = resolution

    shape = property(lambda self: (self.generator.params["A"].shape[0],))
    prior = property(lambda self: standard_normal(self.shape[0]))

    def sample(self, key, n, params=None):
        return jax.random.normal(key, (n,) + self.shape)

    def decode(self, params, latent):
        r = self.resolution
        return jnp.tanh(latent @ params["A"]).reshape(latent.shape[0], r, r, 3)


def reference_rows(args) -> list[dict]:
    if not args.reference:
        return []
    rows = []
    for name in args.stand_ins:
        dim, res = STAND_INS[name]
        kind = resolve("auto", res)[0]
        ours, evals, batch = time_ours(METHODS[0], StandInSpace(dim, res), args.batch, args.steps,
                                       {"deformator": "linear", "reconstructor": kind})
        space = StandInSpace(dim, res)
        matrix = np.asarray(space.generator.params["A"])
        try:
            ref = references.voynov_step_rate(args.reference, stand_in_decoder(matrix, res), dim, kind, batch,
                                              args.steps, "cpu")
        except references.Unavailable as e:
            print(f"reference not timed: {e}")
            return rows
        rows.append({"method": "voynov", "model": name, "devices": 1, "batch": batch, "steps_per_s": ours,
                     "generator_evals_per_step": evals, "generator_evals_per_s": ours * evals,
                     "reference_steps_per_s": ref, "ratio": ours / ref})
        print(format_row(rows[-1]), flush=True)
    return rows


def stand_in_decoder(matrix: np.ndarray, resolution: int):
    """The stand-in generator in torch: NCHW images tanh(latent @ A)."""
    import torch

    A = torch.from_numpy(matrix)
    return lambda z: torch.tanh(z @ A).view(-1, resolution, resolution, 3).permute(0, 3, 1, 2)


# --- table -----------------------------------------------------------------------------------------
HEADER = (f"{'method':<8} {'model':<20} {'devices':>7} {'batch':>5} {'steps/s':>9} {'G evals/step':>12} "
          f"{'G evals/s':>10} {'ref steps/s':>11} {'ratio':>6}")


def format_row(row: dict) -> str:
    ref = row.get("reference_steps_per_s")
    ref_text = f"{ref:11.3f} {row['ratio']:6.2f}" if ref else f"{'-':>11} {'-':>6}"
    return (f"{row['method']:<8} {row['model']:<20} {row['devices']:7d} {row['batch']:5d} {row['steps_per_s']:9.3f} "
            f"{row['generator_evals_per_step']:12d} {row['generator_evals_per_s']:10.1f} {ref_text}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="method modules with build_task")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--devices", nargs="+", type=int, default=[1, SIMULATED_DEVICES],
                        choices=[1, SIMULATED_DEVICES], help="1, and/or 8 simulated CPU devices")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: each method's)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one that compiles)")
    parser.add_argument("--quick", action="store_true", help="the 32 px fixture, batch 8, 2 timed steps")
    parser.add_argument("--reference", default=None, help="GANLatentDiscovery checkout to time beside ours")
    parser.add_argument("--stand-ins", nargs="+", default=list(STAND_INS), choices=list(STAND_INS))
    parser.add_argument("--out", default="benchmarks/results/train_step.json")
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)  # the simulated-devices run
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.batch, args.steps, args.stand_ins = ["fixture-ada32"], 8, 2, ["stand-in-64d-32px"]

    if args.child_out:
        Path(args.child_out).write_text(json.dumps(our_rows(args)))
        return
    print(f"{describe_environment()}\n{HEADER}", flush=True)
    rows = our_rows(args) if 1 in args.devices else []
    if SIMULATED_DEVICES in args.devices:
        rows += simulated_rows(argv)  # the subprocess prints its rows
    rows += reference_rows(args)
    write_record(args.out, "train_step", steps=args.steps, openblas_threads=os.environ["OPENBLAS_NUM_THREADS"],
                 rows=rows)


if __name__ == "__main__":
    main()
