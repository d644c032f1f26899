"""Few-shot adaptation without training: class prototypes of a lab's labelled cells."""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np

from celltl._checks import check_int, check_number
from celltl._compat import input_operations

__all__ = ["PrototypeClassifier", "PrototypeResult", "adapt_prototypes", "feature_model"]


def _chain(model):
    """The layers of ``model`` without its input when each is called on the
    one before (a chain), else None."""
    layers = [la for la in model.layers if not isinstance(la, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        return layers
    for previous, layer in zip(layers, layers[1:]):
        if not any(op is previous for op in input_operations(layer)):
            return None
    return layers


def _features(model, x):
    """``x`` through ``model`` up to the input of its last ``Dense``."""
    chain = _chain(model)
    if not chain:
        raise ValueError(
            "`model` must be a chain of layers ending in a Dense classifier (as "
            f"celltl's classifiers are). Received: model {model.name!r}")
    *body, last = chain
    for layer in body:
        x = layer(x)
    if isinstance(last, keras.layers.Dense):
        return x
    if isinstance(last, keras.Model):
        return _features(last, x)
    raise ValueError(
        "`model` must end in a Dense classifier (possibly inside a sub-model). "
        f"Received: its last layer {last.name!r} of type {type(last).__name__}")


def feature_model(model):
    """The part of a classifier that gives the features its last ``Dense`` reads.

    For celltl's classifiers (:func:`celltl.models.build_classifier`, the
    models ``train.py`` saves, and those behind a
    :class:`~celltl.adaptation.LabColor` or :class:`~celltl.adaptation.LabZoom`)
    that is everything up to the head's output layer: preprocessing,
    backbone, pooling and the head's hidden layers. The layers are shared
    with ``model``.

    Args:
        model: a Keras model whose layers form a chain (sub-models included)
            ending in a ``Dense`` layer.

    Returns:
        A ``keras.Model`` from ``model``'s input to those features.

    Example:

    >>> import keras
    >>> from celltl.adaptation import feature_model
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="hidden"),
    ...                           keras.layers.Dense(3, activation="softmax")])
    >>> tuple(feature_model(model).output_shape)
    (None, 4)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    inputs = keras.Input(model.input_shape[1:], name="image")
    return keras.Model(inputs, _features(model, inputs), name=f"{model.name}_features")


@keras.saving.register_keras_serializable(package="celltl")
class PrototypeClassifier(keras.layers.Layer):
    """Class probabilities from the cosine similarity of features to class prototypes.

    ``probabilities = softmax(temperature * cos(features, prototypes))`` over
    the classes that have a prototype, placed at their indices among
    ``num_classes`` outputs; every other class gets probability 0. The
    prototypes are the mean L2-normalised features of a few labelled cells
    of each class (weight imprinting, Qi et al., 2018).

    Args:
        prototypes: ``(C, D)`` one feature vector per class.
        classes: the ``C`` class indices, in ``[0, num_classes)``.
        num_classes: outputs of the layer.
        temperature: scale of the cosine similarities, ``> 0``. Defaults to
            ``10.0``.
        **kwargs: passed to :class:`keras.layers.Layer`.

    References:
        Qi, Brown and Lowe, "Low-Shot Learning with Imprinted Weights",
        CVPR 2018.

    Example:

    >>> import numpy as np
    >>> from celltl.adaptation import PrototypeClassifier
    >>> layer = PrototypeClassifier([[1.0, 0.0], [0.0, 1.0]], classes=[0, 2], num_classes=3)
    >>> np.asarray(layer(np.array([[2.0, 0.1]]))).round(3).tolist()
    [[1.0, 0.0, 0.0]]
    """

    def __init__(self, prototypes, classes, num_classes, temperature=10.0, **kwargs):
        super().__init__(**kwargs)
        prototypes = np.asarray(prototypes, "float32")
        classes = [int(c) for c in np.asarray(classes).reshape(-1)]
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.temperature = check_number("temperature", temperature, low=1e-3, high=1e3)
        if prototypes.ndim != 2 or prototypes.shape[0] != len(classes) or not classes:
            raise ValueError(
                "`prototypes` must be (C, D), one row per class of `classes`. Received: "
                f"prototypes with shape {prototypes.shape} for {len(classes)} classes")
        if len(set(classes)) != len(classes) or min(classes) < 0 or max(classes) >= self.num_classes:
            raise ValueError(
                f"`classes` must be distinct indices in [0, {self.num_classes}). "
                f"Received: classes={classes}")
        norms = np.linalg.norm(prototypes, axis=1, keepdims=True)
        self.prototypes = prototypes / np.maximum(norms, 1e-12)
        self.classes = classes
        placement = np.zeros((len(classes), self.num_classes), "float32")
        placement[np.arange(len(classes)), classes] = 1.0
        self._placement = placement

    def call(self, features):
        ops = keras.ops
        features = ops.cast(features, "float32")
        unit = features / ops.maximum(ops.norm(features, axis=-1, keepdims=True), 1e-12)
        similarity = ops.matmul(unit, ops.convert_to_tensor(self.prototypes.T))
        probabilities = ops.softmax(self.temperature * similarity, axis=-1)
        return ops.matmul(probabilities, ops.convert_to_tensor(self._placement))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"prototypes": self.prototypes.tolist(), "classes": self.classes,
                       "num_classes": self.num_classes, "temperature": self.temperature})
        return config


class PrototypeResult(NamedTuple):
    """What :func:`adapt_prototypes` built: ``classes`` (the class indices
    with labelled cells, in order), ``counts`` (labelled cells per class),
    ``feature_size`` (length of a feature vector) and ``accuracy`` (on the
    labelled cells themselves, each left out of its own prototype)."""

    classes: tuple
    counts: tuple
    feature_size: int
    accuracy: float


def adapt_prototypes(model, images, labels, temperature=10.0, batch_size=64):
    """Adapts a classifier to a lab from a few labelled cells, without training.

    The lab's labelled cells go through the model up to its last layer
    (:func:`feature_model`: preprocessing, backbone, the head's hidden
    layers, and any :class:`~celltl.adaptation.LabColor` or
    :class:`~celltl.adaptation.LabZoom` in front); the mean of each class's
    L2-normalised features is its prototype, and the returned model
    classifies by cosine similarity to them (:class:`PrototypeClassifier`).
    Nothing is trained, so it takes seconds, cannot overfit the few cells and
    cannot forget: the old lab keeps the model as it was. The adapted model
    predicts only the classes that had labelled cells (the others get
    probability 0), which is what a lab that labels some classes wants.

    How it compares with fine-tuning (:func:`adapt_few_shot`) depends on
    the features: on the other lab of the Another-lab guide, after the
    label-free colour and scale steps, it beat fine-tuning with a model
    trained not to read hue (0.81-0.82 at ``k`` = 5-20) and lost to it with
    the default model (0.60-0.63 against 0.77-0.82); ``adapt.py`` scores
    both.

    Args:
        model: a Keras classifier whose layers form a chain ending in a
            ``Dense`` (celltl's classifiers, also behind ``LabColor`` and
            ``LabZoom``); it is not changed.
        images: ``(N, H, W, 3)`` labelled cells of the lab, as the model
            takes them; at least one per class and two in all.
        labels: ``(N,)`` int labels in the model's classes.
        temperature: scale of the cosine similarities. Defaults to ``10.0``.
        batch_size: images per batch. Defaults to ``64``.

    Returns:
        ``(adapted_model, result)``: a ``keras.Model`` with the same input
        and ``num_classes`` outputs, and a :class:`PrototypeResult`.

    Example:

    >>> import numpy as np, keras
    >>> from celltl.adaptation import adapt_prototypes
    >>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
    ...     keras.layers.Dense(8), keras.layers.Dense(3, activation="softmax")])
    >>> rng = np.random.default_rng(0)
    >>> cells = np.concatenate([rng.normal(0, 1, (3, 4, 4, 3)), rng.normal(5, 1, (3, 4, 4, 3))])
    >>> adapted, result = adapt_prototypes(model, cells, [0, 0, 0, 2, 2, 2])
    >>> result.classes, result.counts, adapted.output_shape
    ((0, 2), (3, 3), (None, 3))
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    batch_size = check_int("batch_size", batch_size, low=1)
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1)
    expected = tuple(model.input_shape[1:])
    if images.ndim != 4 or any(e is not None and e != s
                               for e, s in zip(expected, images.shape[1:])):
        raise ValueError(f"`images` must have the model's input shape {expected}. "
                         f"Received: images with shape {images.shape}")
    if len(images) < 2:
        raise ValueError("`images` must hold at least 2 labelled cells. "
                         f"Received: {len(images)} images")
    if labels.shape[0] != len(images):
        raise ValueError(f"`labels` must have one label per image. Received: "
                         f"{labels.shape[0]} labels for {len(images)} images")
    num_classes = int(model.output_shape[-1])
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"`labels` must be classes of the model (0..{num_classes - 1}). "
            f"Received: labels from {labels.min()} to {labels.max()}")
    extractor = feature_model(model)
    features = np.asarray(extractor.predict(images, batch_size=batch_size, verbose=0),
                          "float64").reshape(len(images), -1)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    classes = tuple(int(c) for c in np.unique(labels))
    sums = np.stack([unit[labels == c].sum(0) for c in classes])
    counts = tuple(int(np.sum(labels == c)) for c in classes)
    # Leave-one-out accuracy on the labelled cells (a class of one cell
    # cannot be scored that way and is skipped).
    hits, scored = 0, 0
    for i, (u, c) in enumerate(zip(unit, labels)):
        row = classes.index(int(c))
        if counts[row] < 2:
            continue
        protos = sums.copy()
        protos[row] -= u
        protos /= np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
        hits += int(classes[int(np.argmax(protos @ u))] == c)
        scored += 1
    layer = PrototypeClassifier(sums, classes, num_classes, temperature=temperature,
                                name="prototypes")
    inputs = keras.Input(model.input_shape[1:], name="image")
    adapted = keras.Model(inputs, layer(extractor(inputs)), name=f"{model.name}_prototypes")
    return adapted, PrototypeResult(classes, counts, int(features.shape[1]),
                                    hits / scored if scored else float("nan"))
