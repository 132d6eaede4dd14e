"""The generator gives the same numbers with its batch sharded over several (simulated) devices."""

import subprocess
import sys

from support import FIXTURES, device_env

SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import latentjax as lj
jax.config.update("jax_default_matmul_precision", "highest")
assert jax.device_count() == 4, jax.devices()
G = lj.load_generator(FIXTURE)
z = jax.random.normal(jax.random.key(0), (8, G.z_dim))
mesh = Mesh(np.array(jax.devices()), ("data",))
batch = NamedSharding(mesh, P("data"))
replicated = NamedSharding(mesh, P())
params = jax.device_put(G.params, replicated)
generate = jax.jit(lambda p, z: G.generate(p, z, truncation_psi=0.7), out_shardings=batch)
sharded = generate(params, jax.device_put(z, batch))
assert len(sharded.sharding.device_set) == 4
single = jax.jit(lambda p, z: G.generate(p, z, truncation_psi=0.7))(G.params, z)
err = float(jnp.linalg.norm(sharded - single) / jnp.linalg.norm(single))
assert err < 1e-5, err
print("ok", err)
"""


def test_sharded_batch_matches_single_device():
    fixture = FIXTURES / "stylegan2" / "ada_s32.pt"
    env = device_env(4)
    result = subprocess.run([sys.executable, "-c", f"FIXTURE = {str(fixture)!r}\n" + SCRIPT],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")
