"""`latentjax train --config configs/x.py[:arg] --workdir DIR [--config.field=value ...]`.

Runs any learned method; running it again on the same work dir resumes. For several processes,
give every process the same coordinator address and process count and its own id (flags, or the
environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID):

    latentjax train --config configs/train_shapes_gan.py --workdir runs/gan \\
        --coordinator_address host0:1234 --num_processes 2 --process_id 0
"""

from __future__ import annotations

import os
import sys

import jax
from absl import flags

from latentjax.programs.flags import parse_config_flags
from latentjax.programs.outputs import output_dir
from latentjax.train import train


def _define_distributed(values: flags.FlagValues) -> None:
    """Multi-process flags, defaulting to the JAX_* environment variables."""
    flags.DEFINE_string("coordinator_address", os.environ.get("JAX_COORDINATOR_ADDRESS"),
                        "host:port of process 0, for multi-process runs", flag_values=values)
    flags.DEFINE_integer("num_processes", int(os.environ.get("JAX_NUM_PROCESSES", 1)),
                         "number of processes", flag_values=values)
    flags.DEFINE_integer("process_id", int(os.environ.get("JAX_PROCESS_ID", 0)), "this process's id",
                         flag_values=values)


def main(argv=None) -> int:
    """Parse `argv` (without the program name) and train; returns an exit status."""
    try:
        values = parse_config_flags(sys.argv[1:] if argv is None else argv, "train", _define_distributed)
    except SystemExit as e:
        print(f"{e}\nusage: latentjax train --config configs/x.py[:smoke] --workdir DIR [--config.field=value ...]",
              file=sys.stderr)
        return 2
    if values.num_processes > 1:
        if not values.coordinator_address:
            print("error: --num_processes > 1 needs --coordinator_address (or JAX_COORDINATOR_ADDRESS)",
                  file=sys.stderr)
            return 2
        jax.distributed.initialize(values.coordinator_address, values.num_processes, values.process_id)
    train(values.config, output_dir(values.workdir, "--workdir"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
