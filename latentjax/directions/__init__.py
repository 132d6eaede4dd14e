"""Direction discovery. Each method is a function (LatentSpace or generator, config, key) -> Directions.

    d = lj.directions.sefa(G, k=10)          # closed form, from the weights
    d = lj.directions.ganspace(G, k=10)      # PCA of w samples (StyleGAN2) / of features, regressed to z
    d = lj.directions.jacobian(G)            # LowRankGAN: per latent, robust PCA of JᵀJ (forward-mode J)
    d = lj.directions.voynov(G, steps=2000)  # learned: direction matrix + reconstructor (Voynov & Babenko)
    d = lj.directions.dplase(G, steps=2200, subspace_steps=200)  # learned: density-preserving, with channel groups
    d = lj.directions.interfacegan(G, lj.shapes.readout_scorer())  # guided: an SVM boundary per scored attribute
    d = lj.directions.linear_semantics(G, scorer)                   # guided: regression coefficients per attribute
    d = lj.directions.ganalyze(G, assessor, steps=2000)             # guided, learned: the assessor's score moves by alpha
    d = lj.directions.continuous_factors(G)                         # guided by known transforms (shift, zoom, brightness)
    d.vectors                                # (k, direction dim), unit rows, best first
"""

from latentjax.directions.base import Directions
from latentjax.latent import parse_layers
from latentjax.directions.continuous import ContinuousFactorsConfig, continuous_factors
from latentjax.directions.dplase import DPLaSEConfig, dplase
from latentjax.directions.ganalyze import GANalyzeConfig, ganalyze
from latentjax.directions.ganspace import GANSpaceConfig, ganspace
from latentjax.directions.interfacegan import (BoundaryFit, InterFaceGANConfig, fit_boundary, interfacegan,
                                               project_boundary, train_boundary)
from latentjax.directions.regression import LinearSemanticsConfig, Regression, linear_semantics, regress
from latentjax.directions.jacobian import JacobianConfig, forward_jacobian, jacobian
from latentjax.directions.sefa import SefaConfig, sefa
from latentjax.directions.voynov import VoynovConfig, trained_shift, voynov

# method name (as in configs and saved files) -> (function, config class)
METHODS = {"sefa": (sefa, SefaConfig), "ganspace": (ganspace, GANSpaceConfig), "jacobian": (jacobian, JacobianConfig),
           "voynov": (voynov, VoynovConfig), "dplase": (dplase, DPLaSEConfig),
           "interfacegan": (interfacegan, InterFaceGANConfig),
           "linear_semantics": (linear_semantics, LinearSemanticsConfig), "ganalyze": (ganalyze, GANalyzeConfig),
           "continuous_factors": (continuous_factors, ContinuousFactorsConfig)}
# methods trained on the harness: `discover` gives them a work dir (`<workdir>/[<method>/]train`) to resume from
LEARNED_METHODS = ("voynov", "dplase", "ganalyze")
# methods guided by a `Scorer`: `discover` builds it from the settings' `scorer` and passes it second
GUIDED_METHODS = ("interfacegan", "linear_semantics", "ganalyze")

__all__ = ["BoundaryFit", "ContinuousFactorsConfig", "DPLaSEConfig", "Directions", "GANSpaceConfig", "GANalyzeConfig", "GUIDED_METHODS",
           "InterFaceGANConfig", "JacobianConfig", "LEARNED_METHODS", "LinearSemanticsConfig", "METHODS", "Regression",
           "SefaConfig", "VoynovConfig", "continuous_factors", "dplase", "fit_boundary", "forward_jacobian", "ganalyze", "ganspace",
           "interfacegan", "jacobian", "linear_semantics", "parse_layers", "project_boundary", "regress", "sefa",
           "train_boundary", "trained_shift", "voynov"]
