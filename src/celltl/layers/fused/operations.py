"""Operation: one layer of a policy as the engine runs it.

The engine (:class:`~celltl.FusedPipeline`) sees every layer of a chain as
an :class:`Operation` of one of five kinds:

- ``"geometry"``: a ``(B, 3, 3)`` matrix per image (composed over the chain,
  one resample);
- ``"pixel"``: a per-pixel operation run in the pass over the resampled
  image, by *family*: ``"affine"`` (a colour matrix and offset, the
  protocol's ``"color"``), ``"sharpness"`` (a blend with the 3x3 blur), or
  None (the layer's own ``transform_images``, the protocol's
  ``"pointwise"``);
- ``"mask"``: a mask evaluated at the coordinates the geometry after it maps
  each pixel to;
- ``"mix"``: :class:`~celltl.AugMix`, whose chains are fused programs of
  their own;
- ``"opaque"``: anything else, run as the layer on the image as it stands.

Layers say what they are through the fusion protocol
(:mod:`celltl.layers.fusion`); Keras core layers through the adapters of
:mod:`celltl.layers.fused.keras_core`.
:func:`celltl.layers.fused.program.operation_for` picks.
"""

from __future__ import annotations

from celltl._compat import layer_seed_generator
from celltl.layers import fusion
from celltl.layers.fused.draws import per_row, split_draws, take, with_input_shape

__all__ = [
    "GEOMETRY",
    "MASK",
    "MIX",
    "OPAQUE",
    "PIXEL",
    "AugMixOperation",
    "Identity",
    "LayerOperation",
    "Operation",
]

GEOMETRY, PIXEL, MASK, MIX, OPAQUE = "geometry", "pixel", "mask", "mix", "opaque"


class Operation:
    """One operation of a fused program: an opaque layer unless a subclass
    says more.

    Attributes:
        layer: the wrapped layer.
        kind: one of ``"geometry"``, ``"pixel"``, ``"mask"``, ``"mix"``,
            ``"opaque"``.
        fill_key: for geometry, ``(interpolation, fill_mode, fill_value)``
            of its resampling, or None when it reads only pixel centres.
        params: for geometry, the names of its ``(B,)`` float32 draws, all 0
            for the identity (exclusive operations of one kind at one
            position select their parameters per image and build one
            matrix), or None.
        batch_only: ``sample`` reads nothing of the images but their batch
            size (AugMix then draws for all its steps at once).
        family: for pixel operations, ``"affine"``, ``"sharpness"`` or None
            (the operations of one family at one position run as one pass).
        stats: the per-image statistics an ``"affine"`` operation reads.
        identity: the operation does nothing (skipped by the fused pass).
    """

    kind = OPAQUE
    fill_key = None
    params = None
    batch_only = False
    family = None
    stats = ()
    identity = False

    def __init__(self, layer):
        self.layer = layer

    def kernel_key(self):
        """Its part of an XLA kernel's cache key: the operation itself."""
        return self

    # -- draws ------------------------------------------------------------------
    def sample(self, images, xp):
        """Per-image draws for the batch (a dict, or None)."""
        return

    def gather(self, draws, index, xp):
        """The draws of the images ``index`` (int32 ``(n,)``)."""
        if draws is None:
            return None
        out = {
            key: take(value, index, 0, xp) if per_row(key, value) else value
            for key, value in draws.items()
        }
        return with_input_shape(out, xp)

    # -- running ----------------------------------------------------------------
    def apply(self, images, draws, xp):
        """The operation on its own (the per-operation path)."""
        return self.layer(images, training=True)

    def matrix(self, draws, height, width, xp):  # pragma: no cover - per kind
        raise NotImplementedError

    def affine(self, draws, stats, xp):  # pragma: no cover - per kind
        raise NotImplementedError

    def blend(self, draws, xp):  # pragma: no cover - per kind
        raise NotImplementedError

    def mask(self, draws, height, width, x, y, xp):  # pragma: no cover - per kind
        raise NotImplementedError


class LayerOperation(Operation):
    """A layer that speaks the fusion protocol (:mod:`celltl.layers.fusion`)."""

    _KINDS = {
        fusion.GEOMETRY: (GEOMETRY, None),
        fusion.COLOR: (PIXEL, "affine"),
        fusion.POINTWISE: (PIXEL, None),
        fusion.MASK: (MASK, None),
    }

    def __init__(self, layer, kind):
        super().__init__(layer)
        self.kind, self.family = self._KINDS[kind]
        self.batch_only = bool(getattr(layer, "fusion_batch_only", False))
        if self.kind == GEOMETRY:
            params = getattr(layer, "fusion_parameters", None)
            self.params = None if params is None else tuple(params)
            if hasattr(layer, "interpolation"):
                self.fill_key = (
                    layer.interpolation,
                    getattr(layer, "fill_mode", "constant"),
                    float(getattr(layer, "fill_value", 0.0)),
                )
        if self.family == "affine":
            self.stats = tuple(getattr(layer, "fusion_statistics", ()))

    def sample(self, images, xp):
        if hasattr(self.layer, "_get_seed_generator"):
            seed = layer_seed_generator(self.layer, xp)
        else:
            seed = getattr(self.layer, "seed_generator", None)
        return self.layer.get_random_transformation(images, seed=seed)

    def apply(self, images, draws, xp):
        out = self.layer.transform_images(images, draws)
        clip = getattr(self.layer, "_clip", None)
        return out if clip is None else clip(out)

    def matrix(self, draws, height, width, xp):
        return self.layer.fusion_matrix(draws, height, width)

    def affine(self, draws, stats, xp):
        return self.layer.fusion_color(draws, stats)

    def mask(self, draws, height, width, x, y, xp):
        return self.layer.fusion_mask(draws, height, width, x, y)

    @property
    def fill_value(self):
        return self.layer.fill_value


class Identity(Operation):
    """:class:`~celltl.layers.composition.PassThrough`: a branch that does
    nothing (RandAugment's identity)."""

    kind = PIXEL
    identity = True
    batch_only = True

    def apply(self, images, draws, xp):
        return images

    def gather(self, draws, index, xp):
        return None


class AugMixOperation(Operation):
    """:class:`~celltl.AugMix`: the draws of its chains for the whole batch
    (each of its operations drawn with its own sampler); the engine runs the
    chains as one fused program and mixes them with :meth:`AugMix.mix`."""

    kind = MIX

    def __init__(self, layer, operation_for):
        super().__init__(layer)
        self.operations = [operation_for(op) for op in layer.operations]

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
                per_op.append(split_draws(a.sample(few, xp), high, xp))
                continue
            if full is None:
                full = np_.zeros((width * batch,) + tuple(images.shape[1:]), dtype="float32")
            per_op.append([a.sample(full, xp) for _ in range(high)])
        steps = []
        for step in range(high):
            op = xp.random.randint((width * batch,), 0, m_ops, seed=seed)
            op = np_.where(step < depth, op, m_ops)
            steps.append({"op": xp.cast(op, "int32"), "ops": [d[step] for d in per_op]})
        g = layer.dirichlet((width, batch), seed, xp)
        a = layer.dirichlet((batch,), seed, xp)
        b = layer.dirichlet((batch,), seed, xp)
        return {"steps": steps, "g": g, "a": a, "b": b, "width": width}

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
        steps = [
            {
                "op": take(step["op"], rows, 0, xp),
                "ops": [a.gather(d, rows, xp) for a, d in zip(self.operations, step["ops"])],
            }
            for step in draws["steps"]
        ]
        return {
            "steps": steps,
            "g": take(draws["g"], index, 1, xp),
            "a": take(draws["a"], index, 0, xp),
            "b": take(draws["b"], index, 0, xp),
            "width": width,
        }
