"""The fusion protocol: layers written outside celltl fuse like celltl's own."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from celltl import ColorDegenerate, FusedPipeline, FusionOptions, GridMask, RandomAffine, Shear
from celltl.layers.base import BaseAugmentation, ColorAugmentation, GeometricAugmentation
from celltl.layers.fusion import fusion_kind, matrix_rows

BACKEND = keras.backend.backend()


# -- layers a user writes in their own code ---------------------------------


class RandomShift(GeometricAugmentation):
    """Shifts each image by up to ``limit`` of its side (the docs' example)."""

    fusion_parameters = ("dx", "dy")

    def __init__(self, limit=0.1, **kwargs):
        super().__init__(**kwargs)
        self.limit = float(limit)

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images),)
        bounds = (-self.limit, self.limit)
        return {"dx": self._uniform(shape, bounds, seed), "dy": self._uniform(shape, bounds, seed)}

    def fusion_matrix(self, transformation, height, width):
        dx, dy = transformation["dx"], transformation["dy"]
        one = self.backend.numpy.ones_like(dx)
        zero = self.backend.numpy.zeros_like(dx)
        return matrix_rows([[one, zero, -dx * width], [zero, one, -dy * height]], self.backend)


class RandomInvert(ColorAugmentation):
    """Inverts each image with probability ``rate``: ``p -> low + high - p``."""

    def __init__(self, rate=0.5, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images),)
        return {"invert": self._uniform(shape, (0.0, 1.0), seed) < self.rate}

    def fusion_color(self, transformation, statistics):
        np_ = self.backend.numpy
        sign = np_.where(transformation["invert"], -1.0, 1.0)
        low, high = self.value_range
        a = np_.eye(3, dtype="float32")[None] * sign[:, None, None]
        b = np_.where(transformation["invert"], low + high, 0.0)
        return a, np_.stack([b, b, b], axis=1)


class RandomStripe(BaseAugmentation):
    """A horizontal stripe of ``fill_value`` at a random row."""

    fusion_kind = "mask"

    def __init__(self, fill_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.fill_value = float(fill_value)

    def get_random_transformation(self, images, seed):
        shape = (self._batch_size(images),)
        return {"row": self._uniform(shape, (0.2, 0.8), seed)}

    def fusion_mask(self, transformation, height, width, x, y):
        centre = transformation["row"][:, None, None] * height
        return self.backend.numpy.abs(y + 0.5 - centre) < 2.0

    def transform_images(self, images, transformation):
        height, width = images.shape[1], images.shape[2]
        np_ = self.backend.numpy
        shape = (self.backend.shape(images)[0], height, width)
        xs = np_.broadcast_to(np_.arange(width, dtype="float32")[None, None, :], shape)
        ys = np_.broadcast_to(np_.arange(height, dtype="float32")[None, :, None], shape)
        mask = self.fusion_mask(transformation, height, width, xs, ys)
        return np_.where(mask[..., None], self.backend.cast(self.fill_value, images.dtype), images)


def _cells(n=6, size=32):
    """Smooth images (so that one resample and chained ones are close)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0.5, 3, 3)
        out.append(np.stack([np.sin(a * xx + b * yy), np.cos(b * xx - c * yy), np.sin(c * xx * yy)], -1))
    return ((np.stack(out) + 1) * 127.5).astype("float32")


@pytest.fixture
def resamples(monkeypatch):
    """Counts the resamples: the fused pass' and every layer's own."""
    from celltl.layers import base
    from celltl.layers.fused import passes

    counts = {"fused": 0, "layers": 0}

    def counting(module, key):
        original = module.affine_sample

        def wrapper(*args, **kwargs):
            counts[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, "affine_sample", wrapper)

    counting(passes, "fused")
    counting(base, "layers")
    return counts


def test_a_geometric_layer_written_outside_celltl_costs_no_extra_resample(resamples):
    policy = FusedPipeline([Shear(seed=1), RandomShift(seed=2), RandomAffine(rotation=20.0, seed=3)])
    x = _cells()
    positions = policy.sample(x)
    assert [item.op.kind for p in positions for item in p] == ["geometry"] * 3
    fused = np.asarray(policy.apply_draws(x, positions, fused=True))
    assert resamples == {"fused": 1, "layers": 0}  # one resample for the three
    alone = np.asarray(policy.apply_draws(x, positions, fused=False))
    assert resamples == {"fused": 1, "layers": 3}
    inner = np.abs(fused - alone)[:, 6:-6, 6:-6]
    assert inner.mean() < 1.0, inner.mean()
    assert np.abs(fused - x).mean() > 5.0  # the policy moved the images


def test_the_layer_alone_is_its_fusion_matrix():
    # The layer alone resamples at its own matrix (GeometricAugmentation):
    # a shift by a quarter moves the content by a quarter of the side.
    layer = RandomShift(limit=0.25)
    x = _cells(2)
    t = {"dx": keras.ops.convert_to_tensor([0.25, 0.0]), "dy": keras.ops.convert_to_tensor([0.0, 0.0])}
    out = np.asarray(layer.transform_images(keras.ops.convert_to_tensor(x), t))
    np.testing.assert_allclose(out[0, :, 8:], x[0, :, :-8], atol=1e-3)
    np.testing.assert_allclose(out[1], x[1], atol=1e-3)


def test_colour_and_mask_layers_written_outside_celltl_fuse_exactly():
    # No geometry moved across them: the fused pass equals the chain exactly
    # (up to float rounding), the mask evaluated in the output frame.
    policy = FusedPipeline([RandomInvert(seed=1), ColorDegenerate(seed=2), RandomStripe(seed=3), GridMask(seed=4)])
    x = _cells()
    positions = policy.sample(x)
    kinds = [(item.op.kind, item.op.family) for p in positions for item in p]
    assert kinds == [("pixel", "affine"), ("pixel", "affine"), ("mask", None), ("mask", None)]
    fused = np.asarray(policy.apply_draws(x, positions, fused=True))
    alone = np.asarray(policy.apply_draws(x, positions, fused=False))
    np.testing.assert_allclose(fused, alone, atol=1e-3)
    assert (fused == 0).any() and np.abs(fused - x).mean() > 5.0


def test_a_mask_moves_with_the_geometry_after_it():
    policy = FusedPipeline([RandomStripe(seed=3), RandomShift(limit=0.2, seed=5)])
    x = _cells()
    positions = policy.sample(x)
    fused = np.asarray(policy.apply_draws(x, positions, fused=True))
    alone = np.asarray(policy.apply_draws(x, positions, fused=False))
    # The stripe lands where the shift took it: the same pixels filled,
    # up to its edges (sharp when evaluated at the shifted coordinates,
    # interpolated after a fill in the chain).
    inner = np.abs(fused - alone)[:, 8:-8, 8:-8]
    assert np.median(inner) < 0.5 and (inner > 40).mean() < 0.1, (inner > 40).mean()
    holes = (fused == 0).all(-1)[:, 8:-8, 8:-8]
    assert holes.any() and (alone[:, 8:-8, 8:-8][holes] < 128).mean() > 0.85


def test_a_bad_fusion_kind_is_a_clear_error():
    class Wrong(RandomShift):
        fusion_kind = "warp"

    with pytest.raises(ValueError, match="fusion_kind='warp'"):
        FusedPipeline([Wrong()])

    class NoMatrix(BaseAugmentation):
        fusion_kind = "geometry"

    with pytest.raises(ValueError, match="no `fusion_matrix`"):
        fusion_kind(NoMatrix())


def test_keras_core_layers_run_unfused_with_a_warning_on_an_untested_keras(monkeypatch):
    from celltl.layers.fused import keras_core

    assert keras_core.adapters_enabled()  # this Keras is tested
    assert not keras_core.adapters_enabled("3.99.0")
    monkeypatch.setattr(keras_core, "TESTED_KERAS", ())
    monkeypatch.setattr(keras_core, "_warned", [])
    layers = [keras.layers.RandomFlip(seed=1), keras.layers.RandomContrast(0.5, value_range=(0, 255), seed=2), Shear(seed=3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = FusedPipeline(layers)
    assert any("run unfused" in str(w.message) for w in caught)
    x = _cells()
    positions = policy.sample(x)
    assert [item.op.kind for p in positions for item in p] == ["opaque", "opaque", "geometry"]
    out = np.asarray(policy(x, training=True))
    assert out.shape == x.shape and np.abs(out - x).mean() > 1.0


def test_fusion_options_are_checked_and_saved():
    with pytest.raises(ValueError, match="Received: sparse=-1"):
        FusionOptions(sparse=-1)
    with pytest.raises(ValueError, match="Received: in_place=1"):
        FusionOptions(in_place=1)
    with pytest.raises(ValueError, match="Received: options="):
        FusedPipeline([Shear()], options="fast")
    policy = FusedPipeline([Shear(seed=1)], options=FusionOptions(sparse=0.0))
    again = FusedPipeline.from_config(policy.get_config())
    assert again.options == FusionOptions(sparse=0.0)
    assert "options" not in FusedPipeline([Shear()]).get_config()
    other = policy.with_options(in_place=False)
    assert other.layers[0] is policy.layers[0] and other.options.sparse == 0.0
    with pytest.raises(Exception):
        policy.options.sparse = 1.0  # frozen
