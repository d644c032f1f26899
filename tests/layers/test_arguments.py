"""Argument validation and documented defaults."""

from __future__ import annotations

import ast
import inspect
import re

import pytest

import celltl.layers
from celltl import AugMix, ColorDegenerate, Cutout, GridMask, RandAugment, Shear

BAD_ARGUMENTS = [
    (GridMask, dict(ratio=1.0), "ratio=1.0"),
    (GridMask, dict(ratio=-0.1), "ratio=-0.1"),
    (GridMask, dict(ratio=(0.5, 0.2)), "ratio=(0.5, 0.2)"),
    (GridMask, dict(unit_size=0.0), "unit_size=0.0"),
    (GridMask, dict(rotation=200), "rotation=200"),
    (GridMask, dict(fill_mode="noise"), "fill_mode='noise'"),
    (GridMask, dict(fill_value=300), "fill_value=300"),
    (GridMask, dict(value_range=(1, 0)), "value_range=(1, 0)"),
    (Cutout, dict(num_holes=-1), "num_holes=-1"),
    (Cutout, dict(num_holes=1.5), "num_holes=1.5"),
    (Cutout, dict(height_factor=1.5), "height_factor=1.5"),
    (Cutout, dict(width_factor=(-0.1, 0.2)), "width_factor=(-0.1, 0.2)"),
    (ColorDegenerate, dict(factor=1.2), "factor=1.2"),
    (ColorDegenerate, dict(factor="high"), "factor='high'"),
    (Shear, dict(x_factor=-0.2), "x_factor=-0.2"),
    (Shear, dict(y_factor=(0, 3)), "y_factor=(0, 3)"),
    (Shear, dict(interpolation="bicubic"), "interpolation='bicubic'"),
    (Shear, dict(fill_mode="mirror"), "fill_mode='mirror'"),
    (AugMix, dict(width=0), "width=0"),
    (AugMix, dict(alpha=0.0), "alpha=0.0"),
    (AugMix, dict(severity=2), "severity=2"),
    (RandAugment, dict(num_ops=14), "num_ops=14"),
    (RandAugment, dict(num_ops=True), "num_ops=True"),
]


@pytest.mark.parametrize("cls, kwargs, shown", BAD_ARGUMENTS)
def test_bad_arguments_name_the_argument_and_value(cls, kwargs, shown):
    with pytest.raises(ValueError) as info:
        cls(**kwargs)
    assert f"Received: {shown}" in str(info.value)


def _documented_defaults(cls):
    """``{arg: default}`` from the ``Args:`` section of the class docstring."""
    doc = inspect.getdoc(cls)
    args = doc.split("Args:", 1)[1]
    found = {}
    for block in re.split(r"\n    (?=\w+(?:, \w+)*: )", "\n" + args):
        m = re.match(r"\s*(\w+): (.*)", block, re.S)
        if not m:
            continue
        d = re.search(r"Defaults\s+to\s+``(.+?)``", m.group(2).replace("\n", " "))
        if d:
            found[m.group(1)] = ast.literal_eval(d.group(1))
    return found


PUBLIC = [
    getattr(celltl.layers, n)
    for n in celltl.layers.__all__
    if n not in ("BaseAugmentation", "RandomLayer")
]


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_documented_defaults_match_the_signature(cls):
    documented = _documented_defaults(cls)
    assert documented, f"{cls.__name__} documents no defaults"
    signature = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls)
    for name, value in documented.items():
        assert name in signature.parameters, f"{cls.__name__} documents unknown {name}"
        default = signature.parameters[name].default
        assert default == value, f"{cls.__name__}.{name}: doc {value!r} != code {default!r}"


def test_every_layer_argument_with_a_default_is_documented():
    for name in celltl.layers.__all__:
        cls = getattr(celltl.layers, name)
        if name in ("BaseAugmentation", "RandomLayer"):
            continue
        documented = _documented_defaults(cls)
        target = cls.__init__ if inspect.isclass(cls) else cls
        for pname, p in inspect.signature(target).parameters.items():
            if p.default is inspect.Parameter.empty or pname in ("seed", "kwargs"):
                continue
            assert pname in documented, f"{name}.{pname} has no documented default"
