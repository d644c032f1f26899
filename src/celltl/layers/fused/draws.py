"""Draws: the per-image parameters of an operation, a dict of tensors, by rows."""

from __future__ import annotations

__all__ = ["per_row", "split_draws", "take", "with_input_shape"]


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


def take(value, index, axis, xp):
    """``value``'s entries ``index`` (int32, non-negative) along ``axis``:
    one ``tf.gather`` on TensorFlow (Keras' ``take`` adds ops for negative
    indices, which the engine never passes; graphs of whole policies hold
    hundreds of these)."""
    if xp.name == "tensorflow":
        import tensorflow as tf

        return tf.gather(value, index, axis=axis)
    return xp.numpy.take(value, index, axis=axis)


def split_draws(draws, parts, xp):
    """``draws`` for ``parts`` equal blocks of rows, one dict per block."""
    if draws is None:
        return [None] * parts
    blocks = [{} for _ in range(parts)]
    for key, value in draws.items():
        pieces = xp.numpy.split(value, parts, axis=0) if per_row(key, value) else [value] * parts
        for block, piece in zip(blocks, pieces):
            block[key] = piece
    return [with_input_shape(block, xp) for block in blocks]
