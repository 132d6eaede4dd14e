"""Network Dissection on the shapes world: latentjax dissect --config configs/dissect.py --workdir out/dissect

    latentjax dissect --config configs/dissect.py:recognizer --workdir out/dissect_recognizer

Every feature layer of `builtin:shapes` (`--config.generator=PATH` for another shapes generator),
or with `network='recognizer'` (the `recognizer` variant) of a recognition network
(`builtin:shapes_recognizer`; `--config.recognizer=WORKDIR/recognizer` for one trained with
`configs/train_recognizer.py`, probed with true renders), is dissected against the world's exact
concepts (`latentjax.shapes.concepts`) on `num_samples` images, streamed in batches; a unit
detects its best concept above IoU `iou_threshold`, `rotate` repeats each layer after a random
rotation of its basis, and for a generator each concept family's `causal_units` best detectors
are ablated and inserted on `causal_samples` images. `valid_tol` (generators) is the
read-out's strict 0.01. `iqr`: GAN Dissection's
thresholds (information quality ratio; a detector above IQR 0.01 and IoU 0.05) instead of
NetDissect's top quantile. `smoke`: one layer, a few batches (seconds). Variants combine:
`recognizer,iqr,smoke`.
"""

from ml_collections import ConfigDict

from latentjax.config import parse_arg, space_config


def get_config(arg=None):
    arg = parse_arg(arg, network=("generator", "recognizer"), threshold=("quantile", "iqr"))
    config = ConfigDict({
        "network": arg.network,  # what is dissected: a shapes "generator" or a "recognizer"
        "generator": "builtin:shapes",
        "recognizer": "builtin:shapes_recognizer",
        "space": space_config(),
        "layers": "all",  # 'all' (every feature layer but the RGB outputs) or comma-separated names: 'b8,b16'
        "num_samples": 2000,
        "batch_size": 100,
        "threshold": arg.threshold,  # "quantile" (NetDissect) or "iqr" (GAN Dissection's IQR search)
        "quantile": 0.005,  # NetDissect: the top 0.5% of each unit's activations
        "bins": 4096,  # histogram bins of the streamed threshold
        "iou_threshold": 0.05 if arg.threshold == "iqr" else 0.04,  # detector threshold: GAN Dissection's, NetDissect's
        "valid_tol": 0.01,  # read-out rerender error below which a generated image counts
        "hue_bins": 6,
        "position_bins": 3,
        "rotate": True,  # the axis-alignment test
        "heatmap_units": 24,  # units shown in each layer's heatmap
        "causal_units": 4,  # per layer and concept family, the best detectors ablated / inserted
        "causal_samples": 256,
        "seed": 0,
    })
    if arg.smoke:
        config.update(layers="conv1" if arg.network == "recognizer" else "b8", num_samples=32, batch_size=16,
                      heatmap_units=8, causal_units=2, causal_samples=16)
    return config
