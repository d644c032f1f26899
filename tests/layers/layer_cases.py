"""The table that drives the shared layer tests.

Every public layer in :mod:`celltl.layers` must have an entry here; the
suite fails when one is missing (``test_every_public_layer_has_a_case``).

Sub-layers of composition cases get their own seeds: a composition layer
seeds its choices, each sub-layer its own parameters.

Each case gives the kwargs to build a typical instance (``kwargs``), the
kwargs of a zero-strength instance that must leave images unchanged
(``identity``), and whether the layer needs RGB input (``identity=None``: the layer has no
zero-strength setting).
"""

from __future__ import annotations

from celltl import (
    AugMix,
    ColorDegenerate,
    Cutout,
    GridMask,
    RandomApply,
    RandAugment,
    RandomAffine,
    RandomChoice,
    FusedPipeline,
    Shear,
    acquisition_policy,
    light_policy,
    study_policy,
)
from celltl import RandomHEDJitter, RandomHue, RandomWhiteBalance


def _zero_layers():
    return [
        ColorDegenerate(factor=(0.0, 0.0)),
        Shear(x_factor=0.0, y_factor=0.0),
    ]


LAYER_CASES = {
    "GridMask": dict(
        cls=GridMask,
        kwargs=dict(ratio=(0.2, 0.4), rotation=30.0),
        identity=dict(ratio=0.0),
        rgb=False,
    ),
    "Cutout": dict(
        cls=Cutout,
        kwargs=dict(num_holes=(1, 3), height_factor=(0.2, 0.4), width_factor=0.3),
        identity=dict(num_holes=0),
        rgb=False,
    ),
    "ColorDegenerate": dict(
        cls=ColorDegenerate,
        kwargs=dict(factor=(0.3, 1.0)),
        identity=dict(factor=(0.0, 0.0)),
        rgb=True,
    ),
    "Shear": dict(
        cls=Shear,
        kwargs=dict(x_factor=0.3, y_factor=(-0.2, 0.1), fill_mode="constant"),
        identity=dict(x_factor=0.0, y_factor=0.0),
        rgb=False,
    ),
    "RandomAffine": dict(
        cls=RandomAffine,
        kwargs=dict(rotation=90.0, zoom=(-0.2, 0.2), translation=0.1),
        identity=dict(rotation=0.0, zoom=0.0, translation=0.0),
        rgb=False,
    ),
    "RandAugment": dict(
        cls=RandAugment,
        kwargs=dict(num_ops=2, magnitude=0.6),
        identity=None,  # its operations include auto-contrast at any magnitude
        rgb=True,
    ),
    "AugMix": dict(
        cls=AugMix,
        kwargs=dict(severity=0.5, width=2, depth=(1, 2)),
        identity=None,  # no strength makes every operation the identity
        rgb=False,
    ),
    "RandomApply": dict(
        cls=RandomApply,
        kwargs=dict(layer_factory=lambda: GridMask(ratio=0.3, seed=1), rate=0.6),
        identity=dict(layer_factory=lambda: GridMask(ratio=0.3), rate=0.0),
        rgb=False,
    ),
    "RandomChoice": dict(
        cls=RandomChoice,
        kwargs=dict(
            layers_factory=lambda: [
                GridMask(seed=1),
                Cutout(seed=2),
                Shear(seed=3),
                ColorDegenerate(seed=4),
            ],
            num=2,
        ),
        identity=dict(layers_factory=_zero_layers, num=2),
        rgb=True,
    ),
    "FusedPipeline": dict(
        cls=FusedPipeline,
        kwargs=dict(
            layers_factory=lambda: [
                RandomApply(Shear(seed=3), rate=0.5, seed=5),
                RandomChoice([GridMask(seed=1), Cutout(seed=2), ColorDegenerate(seed=4)], seed=6),
            ],
        ),
        identity=dict(layers_factory=_zero_layers),
        rgb=True,
        own_seeds=True,
    ),
    "RandomHEDJitter": dict(
        cls=RandomHEDJitter,
        kwargs=dict(sigma=0.2, bias=0.2),
        identity=dict(sigma=0.0, bias=0.0),
        rgb=True,
    ),
    "RandomWhiteBalance": dict(
        cls=RandomWhiteBalance,
        kwargs=dict(temperature=0.2, tint=0.1),
        identity=dict(temperature=0.0, tint=0.0),
        rgb=True,
    ),
    "RandomHue": dict(
        cls=RandomHue,
        kwargs=dict(degrees=30.0),
        identity=dict(degrees=0.0),
        rgb=True,
    ),
}

# The corruption layers, one per name of celltl.robustness.CORRUPTIONS: none
# has a zero-strength setting (severity 1 is the mildest), so no identity.
from celltl import RandomCorruption, corruption_layer  # noqa: E402
from celltl.robustness import CORRUPTIONS  # noqa: E402

for _name in CORRUPTIONS:
    _cls = type(corruption_layer(_name))
    LAYER_CASES[_cls.__name__] = dict(
        cls=_cls, kwargs=dict(severity=(1, 5)), identity=None, rgb=_cls.requires_rgb
    )
LAYER_CASES["RandomCorruption"] = dict(
    cls=RandomCorruption, kwargs=dict(rate=0.8), identity=dict(rate=0.0), rgb=True
)


#: Every public policy function (a name ending in ``_policy`` in
#: :mod:`celltl.layers`) must have an entry here
#: (``test_every_public_policy_has_a_case``). ``kwargs`` builds a typical
#: instance; a policy returns a Keras layer (often a ``keras.layers.Pipeline``)
#: and goes through the model-building and seed checks of the suite.
POLICY_CASES = {
    "study_policy": dict(fn=study_policy, kwargs=dict()),
    "light_policy": dict(fn=light_policy, kwargs=dict()),
    "acquisition_policy": dict(fn=acquisition_policy, kwargs=dict(rate=0.8)),
}


def build_policy(name, **extra):
    """Builds the policy of case ``name``."""
    case = POLICY_CASES[name]
    return case["fn"](**{**case["kwargs"], **extra})


def build(name, which="kwargs", **extra):
    """Builds the layer of case ``name`` (factories are called fresh each time)."""
    case = LAYER_CASES[name]
    kwargs = dict(case[which])
    if "layer_factory" in kwargs:
        kwargs["layer"] = kwargs.pop("layer_factory")()
    if "layers_factory" in kwargs:
        kwargs["layers"] = kwargs.pop("layers_factory")()
    kwargs.update(extra)
    return case["cls"](**kwargs)
