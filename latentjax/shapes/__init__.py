"""The shapes world: a procedural world whose factors of variation are known exactly.

    lj.shapes.render(factors, resolution)          # factors -> images (and masks)
    images, factors = lj.shapes.sample(key, n, resolution)
    lj.shapes.readout(images)                      # images -> factors, exact on clean renders
    lj.shapes.ground_truth(space, params, d)       # how well directions line up with the factors

Modules: `world` (factors and renderer), `reading` (the analytic read-out), `quality` (generator
quality), `scoring` (ground-truth scores of directions), `concepts` (dissection masks),
`recognition` (recognition networks, the assessor), `swaps` (identity swaps scored against the
truth), `seeding` (the targets of a generator's supervised warm start).
Details: docs/shapes.md#latentjaxshapes
"""

from latentjax.shapes import concepts, quality, reading, recognition, scoring, seeding, swaps, world
from latentjax.shapes.concepts import concept_masks, concept_names
from latentjax.shapes.quality import generator_quality, true_render_quality
from latentjax.shapes.reading import is_valid, readout, readout_scorer, rerender_error
from latentjax.shapes.scoring import GroundTruth, GroundTruthConfig, comparison, ground_truth
from latentjax.shapes.swaps import swap_scores
from latentjax.shapes.world import (CENTER_RANGE, FACTOR_NAMES, GREY_RANGE, MIN_RESOLUTION, PERIODIC_FACTORS,
                                    RADIUS_RANGE, SATURATION, SHAPES, SYMMETRY_ORDER, VALUE, Render, centre_pixels,
                                    check_factors, grey_level, hsv_to_rgb, radius_pixels, render, sample,
                                    sample_factors, stream)

__all__ = ["CENTER_RANGE", "FACTOR_NAMES", "GREY_RANGE", "GroundTruth", "GroundTruthConfig", "MIN_RESOLUTION",
           "PERIODIC_FACTORS", "RADIUS_RANGE", "Render", "SATURATION", "SHAPES", "SYMMETRY_ORDER", "VALUE",
           "centre_pixels", "check_factors", "comparison", "concept_masks", "concept_names", "concepts", "generator_quality", "grey_level", "ground_truth",
           "hsv_to_rgb", "is_valid", "quality", "radius_pixels", "reading", "readout", "readout_scorer", "recognition", "render", "rerender_error",
           "sample", "sample_factors", "scoring", "seeding", "stream", "swap_scores", "swaps", "true_render_quality", "world"]
