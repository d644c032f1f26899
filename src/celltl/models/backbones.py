"""Pretrained backbones from :mod:`keras.applications`, split into ordered blocks.

Every backbone made here takes images in ``[0, 255]`` (any float dtype): the
family's own preprocessing is part of the model, so callers never need to know
it. :func:`backbone_blocks` lists a backbone's blocks bottom to top (those of
a model it does not know by layer-name prefix), which is the unit
:func:`celltl.training.freeze_to`, :func:`celltl.training.unfreeze_top` and
the :class:`celltl.training.GradualUnfreezer` speak in.
"""

from __future__ import annotations

import os
import re

import keras

from celltl._checks import check_number
from celltl._compat import flatten_layers

__all__ = ["BACKBONES", "backbone_blocks", "check_backbone", "create_backbone"]

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


def check_backbone(name):
    """Returns the canonical name of a backbone, or raises listing the valid ones.

    Case, ``_`` and ``-`` are ignored, and the Keras class name is accepted:
    ``"ConvNeXtTiny"``, ``"convnext-tiny"`` and ``"convnext_tiny"`` are the
    same backbone.

    Args:
        name: A backbone name.

    Returns:
        The name as listed in :data:`BACKBONES`.

    Raises:
        ValueError: ``name`` is not a string or names no known backbone; the
            message lists :data:`BACKBONES`.

    Example:

    >>> from celltl.models import check_backbone
    >>> check_backbone("MobileNetV3Small")
    'mobilenetv3_small'
    """
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


_canonical = check_backbone  # the old private name (examples/blood_cells uses it)


def _set_bn_momentum(model, momentum):
    """Sets the ``momentum`` of every ``BatchNormalization`` in ``model``; counts them.

    Used by :func:`create_backbone` and :func:`celltl.models.build_classifier`
    for ``bn_momentum``. Keras reads ``momentum`` when it traces the train
    step, and saves it in the layer config.
    """
    momentum = check_number("bn_momentum", momentum, low=0.0, high=1.0)
    count = 0
    for layer in flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


def _load_local_weights(model, path, canonical):
    """``model.load_weights(path)``, with an error naming the file and the backbone."""
    try:
        model.load_weights(path)
    except Exception as err:  # Keras raises ValueError, KeyError, OSError...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"The weights file {path!r} does not fit the {canonical} backbone (a "
            "file saved from another architecture, another backbone, or not a "
            "Keras weights file). Pass a `.weights.h5` saved from "
            f"create_backbone({canonical!r}, ...) or Keras' own ImageNet file for "
            f"{canonical} (``..._notop.h5``). Keras said: {first}"
        ) from err


def create_backbone(
    name, input_shape=(96, 96, 3), weights=None, bn_momentum=None, **kwargs
):
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
        bn_momentum: If set, the ``momentum`` of every
            ``BatchNormalization`` layer, in ``[0, 1]``. Training from
            scratch, a lower momentum (``0.9``) lets the moving statistics
            keep up with fast-changing weights (MobileNetV3's own ``0.999``
            leaves them stale after a few hundred steps, and the model then
            fails at inference). Defaults to ``None`` (the family's own).
        **kwargs: Passed to the ``keras.applications`` constructor (for
            example ``alpha`` or ``minimalistic`` for MobileNetV3).

    Returns:
        A functional ``keras.Model`` mapping ``(batch, H, W, 3)`` images in
        ``[0, 255]`` to feature maps. Its blocks are given by
        :func:`backbone_blocks`.

    Raises:
        ValueError: unknown ``name``, a too-small or non-RGB ``input_shape``,
            a missing weights file or one of another architecture (the
            message names the file), a ``bn_momentum`` outside ``[0, 1]``.
        RuntimeError: ``weights="imagenet"`` when the download fails (offline).

    Example:

    >>> from celltl.models import backbone_blocks, create_backbone
    >>> bb = create_backbone("mobilenetv3_small", input_shape=(32, 32, 3))
    >>> len(backbone_blocks(bb)) > 5
    True
    """
    canonical = check_backbone(name)
    ctor_name, family = _REGISTRY[canonical]
    if bn_momentum is not None:
        check_number("bn_momentum", bn_momentum, low=0.0, high=1.0)
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
            model = ctor(weights="imagenet", **build_kwargs)
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
    else:
        model = ctor(weights=None, **build_kwargs)
        if local_path is not None:
            _load_local_weights(model, local_path, canonical)
    if bn_momentum is not None:
        _set_bn_momentum(model, bn_momentum)
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


# Models celltl does not know: blocks by layer-name prefix, the way
# keras.applications (block3_conv1, conv4_block2_1_bn, stage2_...) and timm /
# torchvision ports (layer1.0.conv1) name their layers. Two-level prefixes
# (`convN_blockM`, `layerN.M`) first, so that ResNet-style names split per
# block, not per stage. A digit run must end the prefix: `conv2d_3` (Keras'
# default name for a Conv2D) has none.
_TWO_LEVEL = re.compile(
    r"^((?:conv|stage|layer|stack|res|group)_?\d+[_.](?:block|unit|layer)?_?\d+[a-z]?)"
    r"(?=[_.]|$)",
    re.IGNORECASE,
)
_ONE_LEVEL = re.compile(
    r"^((?:block|stage|layer|stack|res|group|level|cell)_?\d+[a-z]?|conv_?\d+)(?=[_.]|$)",
    re.IGNORECASE,
)

_NORM_TYPES = tuple(
    getattr(keras.layers, n)
    for n in (
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
        "SpectralNormalization",
    )
    if hasattr(keras.layers, n)
)


def _block_prefix(name):
    """The block prefix of a layer name (``"block2_bn"``: ``"block2"``) or ``None``."""
    for pattern in (_TWO_LEVEL, _ONE_LEVEL):
        m = pattern.match(name)
        if m:
            return m.group(1)
    return None


def _generic_key(layer):
    prefix = _block_prefix(layer.name)
    if prefix is not None:
        return prefix
    if layer.weights and not isinstance(layer, _NORM_TYPES):
        return id(layer)  # a block of its own
    return None  # joins the block before it


def _group_by_key(layers, key_fn):
    """Blocks of layers sharing a key, in order of first appearance.

    A layer whose key is ``None`` joins the block of the layer before it
    (leading ones the first block); a block holding no weights joins its
    neighbour below (the first one, its neighbour above).
    """
    members, order, current, pending = {}, [], None, []
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        key = key_fn(layer)
        if key is None:
            (pending if current is None else members[current]).append(layer)
            continue
        if key not in members:
            members[key] = []
            order.append(key)
        members[key].extend(pending + [layer])
        pending, current = [], key
    blocks = [members[k] for k in order] or ([pending] if pending else [])
    merged = []
    for block in blocks:
        if merged and not any(layer.weights for layer in block):
            merged[-1].extend(block)
        elif merged and not any(layer.weights for layer in merged[-1]):
            merged[-1].extend(block)
        else:
            merged.append(block)
    return merged


def _prefix_matches(name, prefix):
    # "block1" matches "block1_conv" and "block1a_bn", not "block10_conv"
    if not name.startswith(prefix):
        return False
    return not (prefix[-1:].isdigit() and name[len(prefix) : len(prefix) + 1].isdigit())


def _check_blocks(blocks):
    """Checks the form of an explicit ``blocks`` argument; returns it as a list.

    ``None`` passes through. Otherwise a non-empty list of name prefixes
    (strings) or of non-empty layer lists, not a mix.
    """
    if blocks is None:
        return None
    ok = isinstance(blocks, (list, tuple)) and len(blocks) > 0
    if ok and all(isinstance(b, str) and b for b in blocks):
        return list(blocks)
    if ok and all(
        isinstance(b, (list, tuple))
        and len(b) > 0
        and all(isinstance(layer, keras.layers.Layer) for layer in b)
        for b in blocks
    ):
        return [list(b) for b in blocks]
    raise ValueError(
        "`blocks` must be None, a non-empty list of layer-name prefixes, or a "
        "non-empty list of non-empty layer lists, bottom to top. "
        f"Received: blocks={blocks!r}"
    )


def _explicit_blocks(model, blocks):
    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    index = {}  # id(layer) -> block
    if isinstance(blocks[0], str):
        for layer in layers:
            hits = [i for i, p in enumerate(blocks) if _prefix_matches(layer.name, p)]
            if hits:  # the longest matching prefix wins
                index[id(layer)] = max(hits, key=lambda i: len(blocks[i]))
        unused = [p for i, p in enumerate(blocks) if i not in index.values()]
        if unused:
            raise ValueError(
                f"`blocks` prefixes {unused} match no layer of {model.name!r} "
                f"(its layers: {[layer.name for layer in layers][:12]}...). "
                f"Received: blocks={blocks!r}"
            )
    else:
        known = {id(layer) for layer in layers}
        for i, block in enumerate(blocks):
            for layer in block:
                if id(layer) not in known:
                    raise ValueError(
                        f"`blocks` must hold top-level layers of {model.name!r}; "
                        f"blocks[{i}] holds {layer.name!r}, which is not one. "
                        f"Received: blocks={blocks!r}"
                    )
                if id(layer) in index:
                    raise ValueError(
                        f"`blocks` puts layer {layer.name!r} in two blocks "
                        f"({index[id(layer)]} and {i}). Received: blocks={blocks!r}"
                    )
                index[id(layer)] = i
    out, current, pending = [[] for _ in blocks], None, []
    for layer in layers:  # unnamed layers join the block before them
        current = index.get(id(layer), current)
        (pending if current is None else out[current]).append(layer)
    first = index[id(next(layer for layer in layers if id(layer) in index))]
    out[first][:0] = pending
    return out


def backbone_blocks(model, blocks=None):
    """Lists a backbone's blocks, bottom (input side) to top.

    Backbones from :func:`create_backbone` are split by their Keras layer
    names: ConvNeXt into the stem, each stage's blocks (a stage's downsampling
    layers belong to its first block) and the final norm; EfficientNetV2 into
    the stem, each ``blockNx`` and the top conv; MobileNetV3 into the stem,
    each ``expanded_conv`` and the top conv; ResNet50V2 into the stem, each
    ``convN_blockM`` and the post-norm. (A layer such a family's names do
    not cover is treated as in any other model.)

    Any other model is split by layer-name prefix: layers named
    ``blockN_...``, ``stageN_...``, ``convN_blockM_...``, ``layerN.M....``
    (also ``stackN``, ``resN``, ``groupN``, ``levelN``, ``cellN``, ``convN``)
    form one block per prefix, so a block's normalization layers belong to
    it. A layer without such a prefix that holds weights is a block of its
    own; normalization layers and layers without weights join the block
    before them. A model without any prefix therefore gets one block per
    weighted layer, each with the normalization that follows it (a
    ``Sequential`` of sub-models: one block per sub-model).

    Args:
        model: A backbone ``keras.Model``.
        blocks: ``None`` (the split above), or the blocks themselves, bottom
            to top: a list of layer-name prefixes (``["block0_", "block1_"]``;
            the longest matching prefix wins, and ``"block1"`` does not match
            ``"block10_conv"``), or a list of lists of the model's top-level
            layers. Layers that no block names join the block before them
            (leading ones the first block), so the blocks always cover the
            whole model.

    Returns:
        A list of blocks, each a non-empty list of ``keras.layers.Layer``.

    Raises:
        ValueError: ``model`` is not a ``keras.Model``; ``blocks`` is
            malformed, has a prefix that matches no layer, a layer that is
            not a top-level layer of ``model``, or a layer in two blocks.

    Example:

    >>> import keras
    >>> from celltl.models import backbone_blocks
    >>> x = inputs = keras.Input((8, 8, 3))
    >>> for i in range(2):
    ...     x = keras.layers.Conv2D(4, 3, name=f"block{i}_conv")(x)
    ...     x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
    >>> model = keras.Model(inputs, x)
    >>> [[layer.name for layer in b] for b in backbone_blocks(model)]
    [['block0_conv', 'block0_bn'], ['block1_conv', 'block1_bn']]
    >>> len(backbone_blocks(model, blocks=["block0", "block1"]))
    2
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a keras.Model backbone. Received: model={model!r}"
        )
    blocks = _check_blocks(blocks)
    if blocks is not None:
        return _explicit_blocks(model, blocks)
    family = _family(model)
    if family is not None:
        family_key = _FAMILY_KEYS[family]

        def key(layer):  # a layer the family does not name: as in any model
            k = family_key(layer)
            return _generic_key(layer) if k is None else k

        return _group(model.layers, key)
    return _group_by_key(model.layers, _generic_key)
