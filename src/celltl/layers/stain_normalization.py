"""StainNormalization: match every image's colour statistics to a target."""

from __future__ import annotations

import keras
import numpy as np

from celltl import color, macenko, morphometry
from celltl._checks import check_choice, check_numbers, parse_value_range
from celltl._compat import DataLayer

__all__ = ["StainNormalization"]

# Default targets: the mean over the 2,535 images of
# /work/shared/data/blood_cells_train.npz (MGG-stained peripheral blood smears,
# 96x96) of each image's own statistics, rounded to 0.1 (L*a*b*) or to 0.001
# (RGB in [0, 1]), as StainNormalization(method, statistics).adapt(images)
# computes them.
_DEFAULT_TARGETS = {
    ("reinhard", "mean_std"): ((79.6, 10.9, 7.3), (15.3, 8.9, 13.7)),
    ("reinhard", "percentile"): ((84.6, 7.8, 12.1), (13.4, 8.2, 12.3)),
    ("grey_world", "mean_std"): ((0.874, 0.748, 0.721), (1.0, 1.0, 1.0)),
    ("grey_world", "percentile"): ((0.922, 0.806, 0.740), (1.0, 1.0, 1.0)),
}
# "background" and "macenko": the median over the same images of each
# image's background colour (celltl.morphometry.background_colour), of its
# Macenko stain vectors (normalised) and of their 99th-percentile amounts.
_DEFAULT_BACKGROUND = (1.0, 0.894, 0.796)
_DEFAULT_STAINS = ((0.708, 0.5632, 0.4261), (0.4656, 0.8759, 0.1266))
_DEFAULT_MAX = (0.5974, 2.5577)
# "nucleus": the median over the same images of the nucleus' mean
# (L*, a*, b*) after the white-point correction to white.
_DEFAULT_NUCLEUS = (33.7, 46.0, -58.6)
#: Limits of the chroma and darkness gains of method="nucleus".
_CHROMA_GAIN = (0.7, 1.4)
_DARKNESS_GAIN = (0.7, 1.5)


@keras.saving.register_keras_serializable(package="celltl")
class StainNormalization(DataLayer):
    """Normalises the colour of every image, at training and at inference.

    A deterministic preprocessing layer: a model that starts with it
    normalises whatever it is given, so a saved ``.keras`` model carries the
    normalisation (and its target statistics) with it. Each image is mapped on
    its own, from its own statistics, so images from another lab (other stain
    recipe, lamp, camera white balance or exposure) come out looking like the
    target.

    - ``method="reinhard"`` (Reinhard et al., 2001): in CIE L*a*b*, each
      channel's location and scale are matched to ``target_means`` and
      ``target_stds``. Undoes per-channel gains and offsets of the input
      (white balance, exposure, contrast) up to the non-linearity of L*a*b*:
      on real cells about 6% of such a shift is left (median of random
      shifts), about 30% in the worst cases.
    - ``method="grey_world"``: a gain per RGB channel that brings the
      channel's location to ``target_means`` (RGB in ``[0, 1]``): exact for
      per-channel gains, cheaper, and it keeps each image's contrast.
    - ``method="background"``: a white-point correction, a gain per RGB
      channel that brings the image's *background* colour
      (:func:`celltl.morphometry.background_colour`, the 90th percentile of
      each channel: the empty slide) to ``target_means``. Unlike the
      statistics above it does not move with how much of the frame the cell
      fills, and it undoes a tinted background (another lab's yellow plasma)
      without touching the stain's own balance.
    - ``method="nucleus"``: the white-point correction of ``"background"``
      (to white), then, in L*a*b*, every pixel's chroma ``(a*, b*)`` is
      rotated and scaled (gain within ``[0.7, 1.4]``) and its darkness
      ``100 - L*`` scaled (gain within ``[0.7, 1.5]``) so that the
      nucleus' mean colour (:func:`celltl.morphometry.nucleus_colour`)
      becomes ``target_nucleus``; then the background is given the
      ``target_means`` colour. Another lab's nuclear stain that comes out
      redder, paler or darker than the model's is brought to its colour, a
      washed-out (low-contrast) image gets its contrast back, and the
      background, white at that point, is unchanged by the chroma step.
    - ``method="macenko"`` (Macenko et al., 2009; :mod:`celltl.macenko`):
      each image's two stain vectors and amounts, measured in optical
      density *relative to its own background*, are mapped to
      ``target_stains`` and ``target_max``, and the background to
      ``target_means``. It recolours each stain, but per-image estimates
      are unstable where one stain is nearly absent (measured on PBC:
      eosinophil granules can come out purple; see the Another-lab guide).

    ``statistics`` picks the location and scale: ``"mean_std"`` (the classic
    choice) or ``"percentile"``: the median and ``(p95 - p5) / 3.29``. In a
    blood smear the bright plasma background covers most of the image, so the
    median is the background colour and does not move with the size of a dark
    nucleus, whereas the mean (and a Reinhard correction) does. Percentiles
    are taken on a grid of at most 1,024 pixels per image and cost a sort:
    on CPU ``"percentile"`` runs at roughly half the speed of ``"mean_std"``
    for Reinhard and a tenth of it for grey-world.

    Target statistics come from, in order: ``target_means`` / ``target_stds``
    given here, :meth:`adapt` on your own training images (Keras
    preprocessing-layer style), or defaults measured on MGG-stained peripheral
    blood smears (the 2,535 training cells of the project's sample data). They
    are stored in the layer's config, so ``get_config`` / ``from_config`` and a
    ``.keras`` round trip keep adapted values. Call :meth:`adapt` before the
    layer is used in a compiled function.

    Args:
        method: ``"reinhard"`` or ``"grey_world"``. Defaults to
            ``"reinhard"``.
        statistics: ``"mean_std"`` or ``"percentile"``. Defaults to
            ``"mean_std"``.
        target_means: three numbers, the target location of each channel
            (L*a*b* for ``"reinhard"``, RGB in ``(0, 1]`` for
            ``"grey_world"``), or None for the blood-smear default of the
            method and statistics. Defaults to ``None``.
        target_stds: three positive numbers, the target scale of each L*a*b*
            channel (``"reinhard"`` only; ignored by the other methods), or
            None for the default. Defaults to ``None``.
        target_stains: ``"macenko"`` only: two OD vectors of three
            non-negative numbers (nuclear stain first), or None for the
            default. Defaults to ``None``.
        target_max: ``"macenko"`` only: the two stains' target 99th
            percentile amounts, or None for the default. Defaults to
            ``None``.
        target_nucleus: ``"nucleus"`` only: the nucleus' target mean
            ``(L*, a*, b*)``, or None for the default (PBC's). Defaults to
            ``None``.
        value_range: ``(low, high)`` range of input and output. Defaults to
            ``(0, 255)``. Outputs stay inside it.
        **kwargs: passed to :class:`keras.layers.Layer`.

    Needs RGB input (3 channels), batched ``(B, H, W, 3)`` or a single image.
    Applies in training and inference alike. Safe inside ``tf.data`` with any
    Keras backend, compiles with XLA and runs under mixed precision (the maths
    runs in float32, the output is in the compute dtype).

    References:
        E. Reinhard, M. Adhikhmin, B. Gooch and P. Shirley, "Color transfer
        between images", IEEE Computer Graphics and Applications 21 (2001).

    Example:

    >>> import numpy as np
    >>> from celltl import StainNormalization
    >>> rng = np.random.default_rng(0)
    >>> images = rng.uniform(60, 200, (2, 16, 16, 3)).astype("float32")
    >>> bluish = images * np.array([0.8, 0.9, 1.2], "float32")
    >>> norm = StainNormalization(method="grey_world")
    >>> a, b = np.asarray(norm(images)), np.asarray(norm(bluish))
    >>> bool(np.abs(a - b).max() < 1e-2)
    True
    """

    METHODS = ("reinhard", "grey_world", "background", "nucleus", "macenko")
    STATISTICS = color.STATISTICS

    def __init__(
        self,
        method="reinhard",
        statistics="mean_std",
        target_means=None,
        target_stds=None,
        value_range=(0, 255),
        target_stains=None,
        target_max=None,
        target_nucleus=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.method = check_choice("method", method, self.METHODS)
        self.statistics = check_choice("statistics", statistics, self.STATISTICS)
        self.value_range = parse_value_range(value_range)
        if self.method in ("background", "nucleus", "macenko"):
            default_means, default_stds = _DEFAULT_BACKGROUND, (1.0, 1.0, 1.0)
        else:
            default_means, default_stds = _DEFAULT_TARGETS[(self.method, self.statistics)]
        rgb = self.method != "reinhard"
        low = 1e-3 if rgb else -200.0
        high = 1.0 if rgb else 200.0
        self.target_means = check_numbers(
            "target_means",
            default_means if target_means is None else target_means,
            length=3,
            low=low,
            high=high,
        )
        self.target_stds = check_numbers(
            "target_stds",
            default_stds if target_stds is None else target_stds,
            length=3,
            low=1e-3,
            high=200.0,
        )
        stains = _DEFAULT_STAINS if target_stains is None else target_stains
        if not (isinstance(stains, (list, tuple, np.ndarray)) and len(stains) == 2):
            raise ValueError(
                "`target_stains` must be two stain vectors of three numbers. "
                f"Received: target_stains={target_stains!r}"
            )
        self.target_stains = tuple(
            check_numbers("target_stains", v, length=3, low=0.0, high=10.0) for v in stains
        )
        self.target_max = check_numbers(
            "target_max", _DEFAULT_MAX if target_max is None else target_max,
            length=2, low=1e-3, high=50.0,
        )
        self.target_nucleus = check_numbers(
            "target_nucleus", _DEFAULT_NUCLEUS if target_nucleus is None else target_nucleus,
            length=3, low=-128.0, high=128.0,
        )
        self.supports_jit = True

    def call(self, images):
        xp = self.backend
        rank = len(images.shape)
        if rank not in (3, 4):
            raise ValueError(
                "`StainNormalization` expects images of shape (B, H, W, 3) or "
                f"(H, W, 3). Received: images.shape={tuple(images.shape)}"
            )
        if images.shape[-1] is not None and images.shape[-1] != 3:
            raise ValueError(
                "`StainNormalization` needs RGB images with 3 channels. "
                f"Received: images with channels={images.shape[-1]}"
            )
        x = xp.cast(images, "float32")
        if rank == 3:
            x = xp.numpy.expand_dims(x, 0)
        low, high = self.value_range
        x = (x - low) / (high - low)
        if self.method == "reinhard":
            out = color.reinhard_normalize(
                x, self.target_means, self.target_stds, self.statistics, xp=xp
            )
        elif self.method == "background":
            out = color.white_balance(x, self._background_gains(x), xp=xp)
        elif self.method == "nucleus":
            out = self._nucleus_normalize(x)
        elif self.method == "macenko":
            out = macenko.macenko_normalize(
                x, self.target_stains, self.target_max, self.target_means, xp=xp
            )
        else:
            out = color.grey_world(x, self.target_means, self.statistics, xp=xp)
        out = out * (high - low) + low
        if rank == 3:
            out = xp.numpy.squeeze(out, 0)
        return xp.cast(out, self.compute_dtype)

    def _background_gains(self, x, target=None):
        target = self.target_means if target is None else target
        target = self.backend.convert_to_tensor(np.asarray(target, "float32"))
        return target[None] / morphometry.background_colour(x, xp=self.backend)

    def _nucleus_colour(self, x):
        """White-balanced images (background to white), their L*a*b* and the
        nucleus' mean (L*, a*, b*)."""
        xp = self.backend
        white = color.white_balance(x, self._background_gains(x, (1.0, 1.0, 1.0)), xp=xp)
        lab = color.rgb_to_lab(white, xp=xp)
        mask = morphometry.nucleus_mask(white, background=xp.numpy.ones_like(
            white[:, 0, 0, :]), xp=xp)
        return white, lab, morphometry.nucleus_colour(lab, mask, xp=xp)

    def _nucleus_normalize(self, x):
        xp = self.backend
        np_ = xp.numpy
        _, lab, nucleus = self._nucleus_colour(x)
        lightness, a, b = nucleus[:, 0], nucleus[:, 1], nucleus[:, 2]
        norm = np_.sqrt(a * a + b * b)
        tl, ta, tb = self.target_nucleus
        target_norm = float(np.hypot(ta, tb))
        present = norm > 1.0
        safe = np_.maximum(norm, 1.0)
        # rotation taking (a, b) to the target's direction, and a chroma gain
        cos = np_.where(present, (a * ta + b * tb) / (safe * target_norm), 1.0)
        sin = np_.where(present, (a * tb - b * ta) / (safe * target_norm), 0.0)
        gain = np_.where(present, np_.clip(target_norm / safe, *_CHROMA_GAIN), 1.0)
        cos, sin = (cos * gain)[:, None, None], (sin * gain)[:, None, None]
        darkness = np_.where(
            present, np_.clip((100.0 - tl) / np_.maximum(100.0 - lightness, 1.0),
                              *_DARKNESS_GAIN), 1.0)[:, None, None]
        la, lb = lab[..., 1], lab[..., 2]
        out = np_.stack([100.0 - (100.0 - lab[..., 0]) * darkness,
                         cos * la - sin * lb, sin * la + cos * lb], axis=-1)
        rgb = color.lab_to_rgb(out, xp=xp)
        bg = xp.convert_to_tensor(np.asarray(self.target_means, "float32"))
        return np_.clip(rgb * bg, 0.0, 1.0)

    def adapt(self, data, batch_size=256, steps=None):
        """Sets the target statistics to the mean over ``data`` of each image's own.

        (``"background"`` and ``"macenko"``: the median of each image's
        background colour, stain vectors and stain amounts.)

        Args:
            data: images in ``value_range``: a NumPy array or tensor
                ``(N, H, W, 3)``, or a ``tf.data.Dataset`` of image batches (or
                of ``(images, labels)`` batches).
            batch_size: images per step for array input.
            steps: for a dataset, the number of batches to read (None: all).

        Returns:
            ``self``.
        """
        xp = self.backend
        low, high = self.value_range
        loc_sum = np.zeros(3, "float64")
        scale_sum = np.zeros(3, "float64")
        count = 0
        per_image = []
        for batch in _batches(data, batch_size, steps):
            x = (np.asarray(batch, "float32") - low) / (high - low)
            if x.ndim == 3:
                x = x[None]
            if self.method in ("background", "nucleus", "macenko"):
                stats = list(macenko.image_stain_statistics(x, xp=xp))
                stats.append(self._nucleus_colour(x)[2])
                per_image.append([np.asarray(xp.convert_to_numpy(v)) for v in stats])
                count += x.shape[0]
                continue
            if self.method == "reinhard":
                x = color.rgb_to_lab(x, xp=xp)
            loc, scale = color.channel_statistics(x, self.statistics, xp=xp)
            loc_sum += np.asarray(xp.convert_to_numpy(loc), "float64").sum(0)
            scale_sum += np.asarray(xp.convert_to_numpy(scale), "float64").sum(0)
            count += x.shape[0]
        if count == 0:
            raise ValueError("`adapt` received no images. Received: data with 0 images")
        if per_image:
            stains, top, bg, nucleus = (np.concatenate(v) for v in zip(*per_image))
            self.target_nucleus = tuple(float(v) for v in np.median(nucleus, axis=0))
            self.target_means = tuple(float(v) for v in np.median(bg, axis=0))
            vectors = np.median(stains, axis=0)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            self.target_stains = tuple(tuple(float(v) for v in row) for row in vectors)
            self.target_max = tuple(float(v) for v in np.median(top, axis=0))
            return self
        self.target_means = tuple(float(v) for v in loc_sum / count)
        if self.method == "reinhard":
            self.target_stds = tuple(float(v) for v in scale_sum / count)
        return self

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "method": self.method,
                "statistics": self.statistics,
                "target_means": self.target_means,
                "target_stds": self.target_stds,
                "value_range": self.value_range,
                "target_stains": self.target_stains,
                "target_max": self.target_max,
                "target_nucleus": self.target_nucleus,
            }
        )
        return config


def _batches(data, batch_size, steps):
    """NumPy batches of images from an array or a tf.data.Dataset."""
    if hasattr(data, "take") and hasattr(data, "as_numpy_iterator"):
        dataset = data if steps is None else data.take(steps)
        for batch in dataset.as_numpy_iterator():
            yield batch[0] if isinstance(batch, tuple) else batch
        return
    array = keras.ops.convert_to_numpy(data) if not isinstance(data, np.ndarray) else data
    for start in range(0, len(array), batch_size):
        yield array[start : start + batch_size]
