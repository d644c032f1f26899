"""How each operation of a policy takes part in a fused pass.

:class:`~celltl.FusedPipeline` compiles a policy into a flat program of
*positions*; each position holds operations that are mutually exclusive per
image (the branches of one :class:`~celltl.RandomChoice` round), each with a
per-image activity. This module wraps every known operation in an adapter
that says what kind of operation it is and how to run it with draws made
beforehand:

- ``"geometry"`` (:class:`~celltl.Shear`, :class:`~celltl.RandomAffine`,
  Keras ``RandomFlip``): a ``(B, 3, 3)`` matrix mapping an output pixel
  ``(x, y, 1)`` (column, row) to the input pixel it reads. Matrices compose
  by product, so a whole chain resamples once.
- ``"pixel"``: a pointwise (or 3x3) operation, run on the resampled image
  with a per-image ``where`` (colour, contrast, brightness, solarize,
  posterize, sharpness, white balance, HED jitter, auto-contrast).
- ``"mask"`` (:class:`~celltl.GridMask`, :class:`~celltl.Cutout` with a
  constant fill): an analytic mask evaluated at the coordinates that the
  geometry *after* it maps each output pixel to, so the mask moves with the
  image as it did in the per-operation chain.
- ``"mix"`` (:class:`~celltl.AugMix`): its chains are fused programs of their
  own; it needs the image materialised where it stands.
- ``"opaque"``: anything else (another layer, a corruption layer, a Keras
  core layer the engine does not know): called as a layer on the image
  materialised where it stands. It still runs, unfused.

Adapters draw with the wrapped layer's own seed generator and its own
``get_random_transformation``, in the order the per-operation policy with
``strategy="select"`` draws, so the distributions over operations and
magnitudes are those of the unfused policy.
"""

from __future__ import annotations

import keras

from celltl._compat import layer_seed_generator

__all__ = ["adapter_for", "GEOMETRY", "PIXEL", "MASK", "MIX", "OPAQUE"]

GEOMETRY, PIXEL, MASK, MIX, OPAQUE = "geometry", "pixel", "mask", "mix", "opaque"

#: Keras core layers whose ``transform_images`` is pointwise (or a 3x3
#: filter) and whose draws come from ``get_random_transformation``.
KERAS_PIXEL = (
    "AutoContrast",
    "Solarization",
    "RandomPosterization",
    "RandomContrast",
    "RandomBrightness",
    "RandomSharpness",
    "RandomColorDegeneration",
    "RandomGrayscale",
)


def _eye(batch, xp):
    np_ = xp.numpy
    return np_.broadcast_to(np_.eye(3, dtype="float32")[None], (batch, 3, 3))


def _take(value, index, axis, xp):
    """``value``'s entries ``index`` (int32, non-negative) along ``axis``:
    one ``tf.gather`` on TensorFlow (Keras' ``take`` adds ops for negative
    indices, which the engine never passes; graphs of whole policies hold
    hundreds of these)."""
    if xp.name == "tensorflow":
        import tensorflow as tf

        return tf.gather(value, index, axis=axis)
    return xp.numpy.take(value, index, axis=axis)


def per_row(key, value):
    """Whether a draw is one value per image (leading axis the batch), to be
    gathered, split or selected by rows; scalars, None and Keras'
    ``input_shape`` are not."""
    return key != "input_shape" and value is not None and len(getattr(value, "shape", ())) > 0


def with_input_shape(draws, xp):
    """``draws`` with Keras' ``input_shape``, if it has one, made that of its
    rows (after they were gathered, split or selected)."""
    if "input_shape" in draws:
        draws["input_shape"] = xp.shape(draws[next(k for k in draws if k != "input_shape")])
    return draws


def _rows(rows, xp):
    """``(B, 3, 3)`` from two rows of ``(B,)`` tensors (the third is 0 0 1)."""
    np_ = xp.numpy
    r0 = np_.stack(rows[0], axis=1)
    r1 = np_.stack(rows[1], axis=1)
    zero = np_.zeros_like(rows[0][0])
    r2 = np_.stack([zero, zero, np_.ones_like(zero)], axis=1)
    return np_.stack([r0, r1, r2], axis=1)


class Adapter:
    """One operation of a fused program.

    Attributes:
        layer: the wrapped layer.
        kind: one of ``"geometry"``, ``"pixel"``, ``"mask"``, ``"mix"``,
            ``"opaque"``.
        fill_key: for geometry, ``(interpolation, fill_mode, fill_value)``
            of its resampling, or None when it reads only pixel centres
            (flips).
    """

    kind = OPAQUE
    fill_key = None
    #: For geometry whose matrix depends on its draws only: the ``(B,)``
    #: float32 draws it reads, all 0 for the identity. Exclusive operations
    #: of one kind at one position select their parameters per image and
    #: build one matrix (parameter selection), not one matrix each.
    params = None
    #: True when ``sample`` reads nothing of the images but their batch
    #: size (AugMix then draws with a ``(n, 1, 1, C)`` stand-in).
    batch_only = False
    #: ``"affine"`` (a per-image colour matrix and offset, then a clip),
    #: ``"sharpness"`` (a blend with the 3x3 blur) or None: the operations of
    #: one family at one position run as one pass, by parameter selection.
    family = None
    #: Image statistics an ``"affine"`` operation needs (``"mean"``,
    #: ``"minmax"``), per image and channel, of the image it receives.
    stats = ()
    #: True for an operation that does nothing (skipped by the fused pass).
    identity = False

    def __init__(self, layer):
        self.layer = layer

    # -- draws ------------------------------------------------------------------
    def sample(self, images, xp):
        """Per-image draws for the batch (a dict, or None)."""
        return None

    def gather(self, draws, index, xp):
        """The draws of the images ``index`` (int32 ``(n,)``)."""
        if draws is None:
            return None
        out = {
            key: _take(value, index, 0, xp) if per_row(key, value) else value
            for key, value in draws.items()
        }
        return with_input_shape(out, xp)

    # -- running ----------------------------------------------------------------
    def apply(self, images, draws, xp):
        """The operation on its own (the per-operation path)."""
        return self.layer(images, training=True)

    def matrix(self, draws, height, width, xp):  # pragma: no cover - per kind
        raise NotImplementedError

    def mask(self, draws, height, width, x, y, xp):  # pragma: no cover - per kind
        raise NotImplementedError


class _CelltlAdapter(Adapter):
    """celltl image layers: ``get_random_transformation`` / ``transform_images``."""

    def sample(self, images, xp):
        return self.layer.get_random_transformation(
            images, seed=layer_seed_generator(self.layer, xp)
        )

    def apply(self, images, draws, xp):
        return self.layer._clip(self.layer.transform_images(images, draws))


class _CelltlPixel(_CelltlAdapter):
    kind = PIXEL
    batch_only = True


class _ColorDegenerateAffine(_CelltlPixel):
    """``x (1 - f) + grey(x) f``: rows ``(1 - f) e_c + f w``."""

    family = "affine"

    def affine(self, draws, stats, xp):
        from celltl.layers.functional import GREY_WEIGHTS

        np_ = xp.numpy
        f = draws["factor"][:, None, None]
        w = xp.convert_to_tensor(GREY_WEIGHTS, "float32")[None, None, :]
        eye = np_.eye(3, dtype="float32")[None]
        a = eye * (1.0 - f) + w * f
        return a, np_.zeros_like(a[:, 0, :])


class _WhiteBalanceAffine(_CelltlPixel):
    """``low + g (x - low)`` per channel."""

    family = "affine"

    def affine(self, draws, stats, xp):
        np_ = xp.numpy
        t, g = draws["temperature"], draws["tint"]
        gains = np_.exp(np_.stack([t, g, -t], axis=1))
        low = float(self.layer.value_range[0])
        a = np_.eye(3, dtype="float32")[None] * gains[:, None, :]
        return a, low * (1.0 - gains)


class _CelltlGeometry(_CelltlAdapter):
    kind = GEOMETRY
    batch_only = True

    def __init__(self, layer):
        super().__init__(layer)
        self.fill_key = (layer.interpolation, layer.fill_mode, float(layer.fill_value))


class _ShearGeometry(_CelltlGeometry):
    params = ("shear_x", "shear_y")

    def matrix(self, draws, height, width, xp):
        sx, sy = draws["shear_x"], draws["shear_y"]
        one = xp.numpy.ones_like(sx)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        return _rows([[one, sx, -sx * cy], [sy, one, -sy * cx]], xp)


class _AffineGeometry(_CelltlGeometry):
    params = ("angle", "zoom", "shift_x", "shift_y")

    def matrix(self, draws, height, width, xp):
        np_ = xp.numpy
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        scale = 1.0 + draws["zoom"]
        a = np_.cos(draws["angle"]) * scale
        b = np_.sin(draws["angle"]) * scale
        tx = cx - a * cx + b * cy - draws["shift_x"] * width
        ty = cy - b * cx - a * cy - draws["shift_y"] * height
        return _rows([[a, -b, tx], [b, a, ty]], xp)


class _KerasFlip(Adapter):
    """Keras ``RandomFlip``: one draw per image flips every axis of its mode."""

    kind = GEOMETRY

    def sample(self, images, xp):
        return self.layer.get_random_transformation(images, training=True)

    def apply(self, images, draws, xp):
        return self.layer.transform_images(images, draws, training=True)

    def matrix(self, draws, height, width, xp):
        np_ = xp.numpy
        flip = xp.cast(np_.reshape(draws["flips"], (-1,)), "float32")
        sign = 1.0 - 2.0 * flip
        zero = np_.zeros_like(flip)
        one = np_.ones_like(flip)
        mode = self.layer.mode
        hx = mode in ("horizontal", "horizontal_and_vertical")
        vy = mode in ("vertical", "horizontal_and_vertical")
        row0 = [sign, zero, flip * (width - 1)] if hx else [one, zero, zero]
        row1 = [zero, sign, flip * (height - 1)] if vy else [zero, one, zero]
        return _rows([row0, row1], xp)


class _KerasPixel(Adapter):
    kind = PIXEL
    batch_only = True

    def sample(self, images, xp):
        return self.layer.get_random_transformation(images, training=True)

    def apply(self, images, draws, xp):
        return self.layer.transform_images(images, draws, training=True)

class _KerasBrightness(_KerasPixel):
    family = "affine"

    def affine(self, draws, stats, xp):
        np_ = xp.numpy
        delta = xp.cast(np_.reshape(draws["rgb_delta"], (-1,)), "float32")
        a = np_.broadcast_to(np_.eye(3, dtype="float32")[None], (xp.shape(delta)[0], 3, 3))
        return a, np_.stack([delta] * 3, axis=1)


class _KerasContrast(_KerasPixel):
    """``(x - mean) f + mean``, the mean per image and channel."""

    family = "affine"
    stats = ("mean",)

    def affine(self, draws, stats, xp):
        np_ = xp.numpy
        f = xp.cast(np_.reshape(draws["contrast_factor"], (-1,)), "float32")
        a = np_.eye(3, dtype="float32")[None] * f[:, None, None]
        return a, stats["mean"] * (1.0 - f[:, None])


class _KerasAutoContrast(_KerasPixel):
    """Each channel stretched from its min..max to the value range (a flat
    channel is kept, as Keras keeps its NaN channels)."""

    family = "affine"
    stats = ("minmax",)

    def affine(self, draws, stats, xp):
        np_ = xp.numpy
        low, high = (float(v) for v in self.layer.value_range)
        lo, hi = stats["min"], stats["max"]
        flat = hi <= lo
        slope = np_.where(flat, 1.0, (high - low) / np_.where(flat, 1.0, hi - lo))
        offset = np_.where(flat, 0.0, low - lo * slope)
        a = np_.eye(3, dtype="float32")[None] * slope[:, None, :]
        return a, offset


class _KerasSharpness(_KerasPixel):
    """``x + (1 - 2 f) (blur(x) - x)``, Keras' 3x3 kernel, zero padded."""

    family = "sharpness"

    def blend(self, draws, xp):
        return 1.0 - 2.0 * xp.cast(xp.numpy.reshape(draws["factor"], (-1,)), "float32")


class _MaskAdapter(_CelltlAdapter):
    kind = MASK

    @property
    def fill_value(self):
        return self.layer.fill_value


class _GridMaskAdapter(_MaskAdapter):
    def mask(self, draws, height, width, x, y, xp):
        from celltl.layers.functional import grid_mask_at

        params = {k: v for k, v in draws.items() if k != "noise"}
        return grid_mask_at(x, y, height, width, xp=xp, **params)


class _CutoutAdapter(_MaskAdapter):
    def mask(self, draws, height, width, x, y, xp):
        from celltl.layers.functional import box_mask_at

        if self.layer.num_holes[1] == 0:
            return xp.numpy.zeros(xp.shape(x), dtype="bool")
        return box_mask_at(
            x,
            y,
            draws["center_y"],
            draws["center_x"],
            draws["box_height"],
            draws["box_width"],
            xp=xp,
        )


class _AugMixAdapter(Adapter):
    """AugMix: the draws of its chains for the whole batch; run by the engine."""

    kind = MIX

    def __init__(self, layer):
        super().__init__(layer)
        self.operations = [adapter_for(op) for op in layer.operations]

    def sample(self, images, xp):
        layer = self.layer
        np_ = xp.numpy
        batch = xp.shape(images)[0]
        width = layer.width
        low, high = layer.depth
        seed = layer_seed_generator(layer, xp)
        depth = xp.random.randint((width * batch,), low, high + 1, seed=seed)
        m_ops = len(self.operations)
        # Operations whose sampler reads only the batch size draw for all
        # steps at once, split into the steps (a third of the sampling
        # graph), from a (rows, 1, 1, C) stand-in; the others draw step by
        # step from an images-sized one.
        channels = tuple(images.shape[3:])
        few = np_.zeros((high * width * batch, 1, 1) + channels, dtype="float32")
        full = None
        per_op = []
        for a in self.operations:
            if a.batch_only:
                per_op.append(_split_draws(a.sample(few, xp), high, xp))
                continue
            if full is None:
                full = np_.zeros((width * batch,) + tuple(images.shape[1:]), dtype="float32")
            per_op.append([a.sample(full, xp) for _ in range(high)])
        steps = []
        for step in range(high):
            op = xp.random.randint((width * batch,), 0, m_ops, seed=seed)
            op = np_.where(step < depth, op, m_ops)
            steps.append({"op": xp.cast(op, "int32"), "ops": [d[step] for d in per_op]})
        g = self._gamma(layer, (width, batch), xp, seed)
        a = self._gamma(layer, (batch,), xp, seed)
        b = self._gamma(layer, (batch,), xp, seed)
        return {"steps": steps, "g": g, "a": a, "b": b, "width": width}

    @staticmethod
    def _gamma(layer, shape, xp, seed):
        if layer.alpha == 1.0:
            u = xp.random.uniform(shape, minval=1e-6, maxval=1.0, seed=seed)
            return -xp.numpy.log(u)
        return xp.random.gamma(shape, alpha=layer.alpha, seed=seed)

    def select(self, active, first, second, xp):
        """Per image, the draws ``first`` where ``active`` ((B,) bool), else
        ``second`` (two draws for the same batch)."""
        np_ = xp.numpy
        width = first["width"]
        rows = np_.concatenate([active] * width, axis=0)

        def pick(mask, a, b):
            shape = (-1,) + (1,) * (len(a.shape) - 1)
            return np_.where(np_.reshape(mask, shape), a, b)

        steps = [
            {
                "op": pick(rows, s1["op"], s2["op"]),
                "ops": [
                    None if d1 is None else {
                        k: pick(rows, v, d2[k]) if per_row(k, v) else v
                        for k, v in d1.items()
                    }
                    for d1, d2 in zip(s1["ops"], s2["ops"])
                ],
            }
            for s1, s2 in zip(first["steps"], second["steps"])
        ]
        return {
            "steps": steps,
            "g": np_.where(active[None, :], first["g"], second["g"]),
            "a": pick(active, first["a"], second["a"]),
            "b": pick(active, first["b"], second["b"]),
            "width": width,
        }

    def gather(self, draws, index, xp):
        if draws is None:  # drawn when it runs
            return None
        np_ = xp.numpy
        width = draws["width"]
        batch = xp.shape(draws["a"])[0]
        rows = np_.reshape(
            np_.arange(width, dtype="int32")[:, None] * batch + index[None, :], (-1,)
        )
        steps = []
        for step in draws["steps"]:
            steps.append(
                {
                    "op": _take(step["op"], rows, 0, xp),
                    "ops": [a.gather(d, rows, xp) for a, d in zip(self.operations, step["ops"])],
                }
            )
        return {
            "steps": steps,
            "g": _take(draws["g"], index, 1, xp),
            "a": _take(draws["a"], index, 0, xp),
            "b": _take(draws["b"], index, 0, xp),
            "width": width,
        }


def _split_draws(draws, parts, xp):
    """``draws`` for ``parts`` equal blocks of rows, one dict per block."""
    if draws is None:
        return [None] * parts
    blocks = [{} for _ in range(parts)]
    for key, value in draws.items():
        pieces = xp.numpy.split(value, parts, axis=0) if per_row(key, value) else [value] * parts
        for block, piece in zip(blocks, pieces):
            block[key] = piece
    return [with_input_shape(block, xp) for block in blocks]


_CELLTL = {
    "Shear": _ShearGeometry,
    "RandomAffine": _AffineGeometry,
    "GridMask": _GridMaskAdapter,
    "Cutout": _CutoutAdapter,
    "ColorDegenerate": _ColorDegenerateAffine,
    "RandomHEDJitter": _CelltlPixel,
    "RandomWhiteBalance": _WhiteBalanceAffine,
    "RandomHue": _CelltlPixel,
}


_KERAS_FAMILIES = {
    "RandomBrightness": _KerasBrightness,
    "RandomContrast": _KerasContrast,
    "AutoContrast": _KerasAutoContrast,
    "RandomSharpness": _KerasSharpness,
}


def adapter_for(layer):
    """The adapter of ``layer`` (an ``"opaque"`` one when it is not known)."""
    from celltl.layers.aug_mix import AugMix
    from celltl.layers.base import BaseAugmentation
    from celltl.layers.composition import PassThrough

    name = type(layer).__name__
    module = type(layer).__module__
    if isinstance(layer, AugMix) and type(layer) is AugMix:
        return _AugMixAdapter(layer)
    if isinstance(layer, PassThrough):
        return _Identity(layer)
    if isinstance(layer, BaseAugmentation) and module.startswith("celltl.") and name in _CELLTL:
        cls = _CELLTL[name]
        if issubclass(cls, _MaskAdapter) and layer.fill_mode != "constant":
            return Adapter(layer)
        return cls(layer)
    if module.startswith("keras.") and isinstance(layer, keras.layers.Layer):
        if name == "RandomFlip" and getattr(layer, "data_format", "channels_last") == "channels_last":
            return _KerasFlip(layer)
        if name in KERAS_PIXEL and getattr(layer, "data_format", "channels_last") == "channels_last":
            return _KERAS_FAMILIES.get(name, _KerasPixel)(layer)
    return Adapter(layer)


class _Identity(Adapter):
    """``PassThrough``: a branch that does nothing (RandAugment's identity)."""

    kind = PIXEL
    identity = True
    batch_only = True

    def apply(self, images, draws, xp):
        return images

    def gather(self, draws, index, xp):
        return None
