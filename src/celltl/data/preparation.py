"""One way to turn images into model inputs: ``prepare_images`` and its config.

The loaders, the example's training and its ``predict.py`` all prepare images
with :func:`prepare_images`, and a trained model's preparation is kept as a
small JSON-ready dict (:func:`preparation_config`), so a model is served
exactly as it was trained.
"""

from __future__ import annotations

import numpy as np

from celltl._checks import check_choice, parse_size

__all__ = ["prepare_images", "preparation_config"]

_CROPS = ("none", "center")
_METHODS = ("auto", "area", "bicubic", "bilinear", "lanczos3", "nearest")
_DTYPES = ("uint8", "float32")
_CHUNK = 512


def preparation_config(image_size, crop="none", method="auto", dtype="uint8"):
    """The arguments of :func:`prepare_images` as a checked, JSON-ready dict.

    Save it with a model (``json.dump``) and prepare new images with
    ``prepare_images(images, **config)``.

    Args:
        image_size: Output ``int`` side or ``(height, width)``.
        crop: ``"none"`` (resize the whole image) or ``"center"`` (first cut
            the largest centred window with the output's aspect ratio: a
            square for square outputs). Defaults to ``"none"``.
        method: ``"auto"`` (``"area"``, an average over each output pixel's
            footprint, when an image shrinks; ``"bicubic"`` when it grows),
            or ``"area"``, ``"bicubic"``, ``"bilinear"``, ``"lanczos3"``,
            ``"nearest"`` (``tf.image.resize``, antialiased). Defaults to
            ``"auto"``.
        dtype: ``"uint8"`` (rounded and clipped to ``[0, 255]``) or
            ``"float32"``. Defaults to ``"uint8"``.

    Returns:
        ``{"image_size": [height, width], "crop": ..., "method": ...,
        "dtype": ...}``.

    Example:

    >>> from celltl.data import preparation_config
    >>> preparation_config(64)
    {'image_size': [64, 64], 'crop': 'none', 'method': 'auto', 'dtype': 'uint8'}
    """
    size = parse_size("image_size", image_size)
    if size is None:
        raise ValueError("`image_size` must be an int or (height, width). Received: image_size=None")
    return {
        "image_size": list(size),
        "crop": check_choice("crop", crop, _CROPS),
        "method": check_choice("method", method, _METHODS),
        "dtype": check_choice("dtype", dtype, _DTYPES),
    }


def _crop(image, size, crop):
    if crop == "none":
        return image
    h, w = image.shape[:2]
    ratio = size[1] / size[0]
    ch, cw = (h, max(1, round(h * ratio))) if w / h > ratio else (max(1, round(w / ratio)), w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top:top + ch, left:left + cw]


def _resize(batch, size, method, dtype):
    """Resizes a batch of equal-sized images (``tf.image.resize``, antialiased)."""
    h, w = batch.shape[1:3]
    if (h, w) == size:
        out = batch
    else:
        import tensorflow as tf

        if method == "auto":
            method = "area" if h > size[0] or w > size[1] else "bicubic"
        parts = [
            tf.image.resize(batch[i:i + _CHUNK], size, method=method, antialias=True).numpy()
            for i in range(0, len(batch), _CHUNK)
        ]
        out = np.concatenate(parts) if parts else np.zeros((0, *size, batch.shape[-1]))
    if dtype == "uint8":
        if out.dtype == np.uint8:
            return out
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out.astype(np.float32)


def prepare_images(images, image_size, *, crop="none", method="auto", dtype="uint8"):
    """Crops and resizes images to the model's input size.

    Images already of the output size (after the crop) are left unchanged
    (only cast), so preparing twice changes nothing.

    Args:
        images: ``(N, H, W, C)`` pixels in ``[0, 255]`` (uint8 or float), or a
            sequence of ``(H, W, C)`` images of different sizes (such as files
            read one by one), each prepared on its own.
        image_size: Output ``int`` side or ``(height, width)``.
        crop: See :func:`preparation_config`. Defaults to ``"none"``.
        method: See :func:`preparation_config`. Defaults to ``"auto"``.
        dtype: ``"uint8"`` (rounded and clipped) or ``"float32"``. Defaults to
            ``"uint8"``.

    Returns:
        A NumPy array ``(N, height, width, C)`` of ``dtype``.

    Example:

    >>> import numpy as np
    >>> from celltl.data import prepare_images, preparation_config
    >>> images = np.full((2, 96, 120, 3), 200, np.uint8)
    >>> prepare_images(images, 64, crop="center").shape
    (2, 64, 64, 3)
    >>> config = preparation_config(64, crop="center")
    >>> bool((prepare_images(images, **config) == 200).all())
    True
    """
    config = preparation_config(image_size, crop, method, dtype)
    size = tuple(config["image_size"])
    if isinstance(images, np.ndarray) and images.ndim == 4:
        batches = [images]
    elif isinstance(images, (list, tuple)) and all(
        np.ndim(im) == 3 for im in images
    ):
        batches = [np.asarray(im)[None] for im in images]
    else:
        shape = getattr(images, "shape", None)
        raise ValueError(
            "`images` must be an array (N, H, W, C) or a list of (H, W, C) "
            f"images. Received: images of shape {shape}"
            if shape is not None
            else f"`images` must be an array (N, H, W, C) or a list of (H, W, C) "
            f"images. Received: images={type(images).__name__}"
        )
    out = []
    for batch in batches:
        if crop != "none":
            batch = np.stack([_crop(im, size, crop) for im in batch]) if len(batch) else batch
        out.append(_resize(batch, size, config["method"], config["dtype"]))
    if not out:
        return np.zeros((0, *size, 3), config["dtype"])
    return out[0] if len(out) == 1 else np.concatenate(out)
