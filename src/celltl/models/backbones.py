"""Pretrained backbones from :mod:`keras.applications`, split into ordered blocks.

Every backbone made here takes images in ``[0, 255]`` (any float dtype): the
family's own preprocessing is part of the model, so callers never need to know
it. :func:`backbone_blocks` lists a backbone's blocks bottom to top, which is
the unit :func:`celltl.training.freeze_to` and the
:class:`celltl.training.GradualUnfreezer` speak in.
"""

from __future__ import annotations

import os
import re

import keras

__all__ = ["BACKBONES", "backbone_blocks", "create_backbone"]

_MIN_SIZE = 32

# canonical name -> (keras.applications constructor name, family)
_REGISTRY = {
    "convnext_tiny": ("ConvNeXtTiny", "convnext"),
    "convnext_small": ("ConvNeXtSmall", "convnext"),
    "convnext_base": ("ConvNeXtBase", "convnext"),
    "efficientnetv2_b0": ("EfficientNetV2B0", "efficientnetv2"),
    "efficientnetv2_s": ("EfficientNetV2S", "efficientnetv2"),
    "mobilenetv3_small": ("MobileNetV3Small", "mobilenetv3"),
    "mobilenetv3_large": ("MobileNetV3Large", "mobilenetv3"),
    "resnet50v2": ("ResNet50V2", "resnetv2"),
}

#: Names accepted by :func:`create_backbone` (``"ConvNeXtTiny"`` works too).
BACKBONES = tuple(_REGISTRY)


def _canonical(name):
    if not isinstance(name, str):
        raise ValueError(
            f"`name` must be a string, one of {BACKBONES}. Received: name={name!r}"
        )
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for canonical, (ctor, _) in _REGISTRY.items():
        if key in (canonical.replace("_", ""), ctor.lower()):
            return canonical
    raise ValueError(
        f"Unknown backbone. Expected one of {BACKBONES}. Received: name={name!r}"
    )


def create_backbone(name, input_shape=(96, 96, 3), weights=None, **kwargs):
    """Creates a headless ``keras.applications`` backbone taking ``[0, 255]`` images.

    The backbone outputs its last feature map (no pooling, no classifier).
    Preprocessing is built in: ConvNeXt and EfficientNetV2 use their own
    ``include_preprocessing=True``, MobileNetV3 its ``include_preprocessing``,
    and ResNet50V2 gets a ``Rescaling`` to ``[-1, 1]`` in front.

    Args:
        name: One of :data:`BACKBONES`, e.g. ``"convnext_tiny"`` (the Keras
            class name ``"ConvNeXtTiny"`` is accepted as well).
        input_shape: ``(height, width, 3)``; height and width must be at
            least 32 (every family downsamples by 32). Defaults to
            ``(96, 96, 3)``.
        weights: ``None`` (random initialisation), ``"imagenet"`` (Keras
            downloads them, or reuses its cache under ``~/.keras/models``), or
            the path of a local weights file (a Keras ``.weights.h5`` saved
            from the same backbone, or the ``..._notop.h5`` file Keras
            itself would download). Defaults to ``None``.
        **kwargs: Passed to the ``keras.applications`` constructor (for
            example ``alpha`` or ``minimalistic`` for MobileNetV3).

    Returns:
        A functional ``keras.Model`` mapping ``(batch, H, W, 3)`` images in
        ``[0, 255]`` to feature maps. Its blocks are given by
        :func:`backbone_blocks`.

    Raises:
        ValueError: unknown ``name``, a too-small or non-RGB ``input_shape``,
            a missing weights file.
        RuntimeError: ``weights="imagenet"`` when the download fails (offline).

    Example:

    >>> from celltl.models import backbone_blocks, create_backbone
    >>> bb = create_backbone("mobilenetv3_small", input_shape=(32, 32, 3))
    >>> len(backbone_blocks(bb)) > 5
    True
    """
    canonical = _canonical(name)
    ctor_name, family = _REGISTRY[canonical]
    input_shape = tuple(input_shape)
    if (
        len(input_shape) != 3
        or input_shape[-1] != 3
        or any(d is not None and d < _MIN_SIZE for d in input_shape[:2])
    ):
        raise ValueError(
            f"`input_shape` must be (height, width, 3) with height and width >= "
            f"{_MIN_SIZE} for {canonical}. Received: input_shape={input_shape}"
        )
    local_path = None
    if weights is not None and weights != "imagenet":
        local_path = os.fspath(weights)
        if not os.path.isfile(local_path):
            raise ValueError(
                "`weights` must be None, 'imagenet' or the path of an existing "
                f"weights file. Received: weights={weights!r}"
            )
    for reserved in ("include_top", "input_tensor", "weights", "input_shape"):
        if reserved in kwargs:
            raise ValueError(
                f"`{reserved}` is set by create_backbone and cannot be passed. "
                f"Received: {reserved}={kwargs[reserved]!r}"
            )

    ctor = getattr(keras.applications, ctor_name)
    build_kwargs = dict(include_top=False, **kwargs)
    if family in ("convnext", "efficientnetv2", "mobilenetv3"):
        build_kwargs["include_preprocessing"] = True
    if family == "resnetv2":
        inputs = keras.Input(input_shape, name="image")
        scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocessing")(
            inputs
        )
        build_kwargs["input_tensor"] = scaled
    else:
        build_kwargs["input_shape"] = input_shape

    if weights == "imagenet":
        try:
            return ctor(weights="imagenet", **build_kwargs)
        except Exception as err:  # keras raises a bare Exception on fetch failure
            url = re.search(r"https?://\S+?(?=[:\s]|$)", str(err))
            cache = os.path.join(
                os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models"
            )
            raise RuntimeError(
                f"Could not get the ImageNet weights of {canonical!r}"
                + (f" from {url.group(0)}" if url else "")
                + f" (no network?). Keras caches them in {cache}. Download the "
                "file on a machine with network access and pass its path: "
                f"create_backbone({canonical!r}, weights='/path/to/file.h5'). "
                f"Original error: {err}"
            ) from err
    model = ctor(weights=None, **build_kwargs)
    if local_path is not None:
        model.load_weights(local_path)
    return model


# ---------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------


def _convnext_key(layer):
    name = layer.name
    m = re.search(r"_stage_(\d+)_block_(\d+)_", name)
    if m:
        return f"stage{m.group(1)}_block{m.group(2)}"
    m = re.search(r"_downsampling_block_(\d+)$", name)
    if m:  # downsampling i sits in front of stage i + 1
        return f"stage{int(m.group(1)) + 1}_block0"
    if name.endswith("_stem") or name.endswith("_prestem_normalization"):
        return "stem"
    if isinstance(layer, keras.layers.LayerNormalization):
        return "final_norm"
    return None


def _prefix_key(patterns):
    def key(layer):
        for pattern, label in patterns:
            m = re.match(pattern, layer.name)
            if m:
                return label or m.group(1)
        return None

    return key


_FAMILY_KEYS = {
    "convnext": _convnext_key,
    "efficientnetv2": _prefix_key(
        [(r"^stem_", "stem"), (r"^(block\d+[a-z])_", None), (r"^top_", "top")]
    ),
    "mobilenetv3": _prefix_key(
        [
            (r"^(conv|conv_bn)$", "stem"),
            (r"^(expanded_conv(?:_\d+)?)_", None),
            (r"^(conv_1|conv_1_bn|conv_2)$", "top"),
        ]
    ),
    "resnetv2": _prefix_key(
        [
            (r"^(conv1|pool1)_", "stem"),
            (r"^(conv\d_block\d+)_", None),
            (r"^post_", "top"),
        ]
    ),
}

_SIGNATURES = {
    "convnext": r"_stage_\d+_block_\d+_",
    "efficientnetv2": r"^block\d+[a-z]_",
    "mobilenetv3": r"^expanded_conv",
    "resnetv2": r"^conv\d_block\d+_",
}


def _family(model):
    names = [layer.name for layer in model.layers]
    for family, pattern in _SIGNATURES.items():
        if sum(bool(re.search(pattern, n)) for n in names) >= 3:
            return family
    return None


def _group(layers, key_fn):
    groups, keys, pending = [], [], []
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        key = key_fn(layer)
        if key is None:
            if groups:
                groups[-1].append(layer)
            else:
                pending.append(layer)
            continue
        if keys and keys[-1] == key:
            groups[-1].append(layer)
        else:
            keys.append(key)
            groups.append(pending + [layer])
            pending = []
    if pending:
        groups.append(pending)
    return groups


def backbone_blocks(model):
    """Lists a backbone's blocks, bottom (input side) to top.

    Backbones from :func:`create_backbone` are split by their Keras layer
    names: ConvNeXt into the stem, each stage's blocks (a stage's downsampling
    layers belong to its first block) and the final norm; EfficientNetV2 into
    the stem, each ``blockNx`` and the top conv; MobileNetV3 into the stem,
    each ``expanded_conv`` and the top conv; ResNet50V2 into the stem, each
    ``convN_blockM`` and the post-norm. Any other model is split into its
    top-level layers that hold weights (build a custom backbone as a sequence
    of sub-models to get one block per sub-model). Layers without weights join
    the block before them.

    Args:
        model: A backbone ``keras.Model``.

    Returns:
        A list of blocks, each a non-empty list of ``keras.layers.Layer``.

    Example:

    >>> from celltl.models import backbone_blocks, create_backbone
    >>> bb = create_backbone("convnext_tiny", input_shape=(32, 32, 3))
    >>> blocks = backbone_blocks(bb)
    >>> len(blocks)  # stem + 3 + 3 + 9 + 3 blocks + final norm
    20
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a keras.Model backbone. Received: model={model!r}"
        )
    family = _family(model)
    if family is not None:
        return _group(model.layers, _FAMILY_KEYS[family])
    return _group(
        model.layers, lambda layer: id(layer) if layer.weights else None
    )
