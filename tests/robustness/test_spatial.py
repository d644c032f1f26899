"""Spatial corruption kernels against NumPy / PIL references, on real cells."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from celltl._compat import current_backend
from celltl.robustness import spatial as S

TF = current_backend("tensorflow")
HYPO = settings(max_examples=8, deadline=None, derandomize=True)


def _np(x):
    return np.asarray(x)


def _correlate_reflect(image, kernel):
    """NumPy loop reference: ``image`` (H, W, C) correlated with ``kernel`` (K, K)."""
    pad = kernel.shape[0] // 2
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.zeros_like(image, dtype=np.float64)
    size = kernel.shape[0]
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            out[y, x] = np.tensordot(kernel, padded[y : y + size, x : x + size], axes=2)
    return out


def _pil_jpeg(image, quality, subsampling=-1):
    buf = io.BytesIO()
    Image.fromarray(image).save(
        buf, "JPEG", quality=int(quality), subsampling=subsampling
    )
    return np.asarray(Image.open(buf)).astype(np.float32) / 255


@pytest.fixture(scope="module")
def cells(real_cells):
    """16 real 96x96 uint8 cells."""
    return real_cells[0][:16]


@pytest.fixture(scope="module")
def crop(real_cells):
    """One real 32x32 crop around a cell centre, (1, 32, 32, 3) float32."""
    return real_cells[0][3:4, 32:64, 32:64].astype(np.float32) / 255


@pytest.fixture
def small():
    return np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)


def _angles(strength, xp=TF):
    """Motion angles for :func:`_apply`: 0.2, 1.35, 2.5... rad, one per image."""
    return 0.2 + 1.15 * (xp.numpy.cumsum(xp.numpy.ones_like(strength)) - 1)


def _apply(name, images, strength, xp=TF):
    """Runs kernel ``name`` at per-image ``strength`` (B,)."""
    strength = xp.cast(xp.convert_to_tensor(strength), "float32")
    if name == "defocus_blur":
        return S.defocus_blur(images, strength, xp=xp, max_radius=3)
    if name == "motion_blur":
        angle = _angles(strength, xp)
        return S.motion_blur(images, strength, angle, xp=xp, max_length=6)
    if name == "jpeg_compress":
        return S.jpeg_compress(images, strength, xp=xp)
    return S.pixelate(images, strength, xp=xp)


KERNELS = ("defocus_blur", "motion_blur", "jpeg_compress", "pixelate")
STRONG = {
    "defocus_blur": 2.5, "motion_blur": 5.0, "jpeg_compress": 10.0, "pixelate": 0.4
}
WEAK = {"defocus_blur": 1.2, "motion_blur": 2.0, "jpeg_compress": 60.0, "pixelate": 0.7}


# --- defocus -----------------------------------------------------------------


@pytest.mark.parametrize("radius", [0.8, 1.7, 2.3, 3.0])
def test_disk_kernel_is_the_pixel_coverage_of_the_disk(radius):
    fine = (np.arange(48) + 0.5) / 48 - 0.5
    grid = np.arange(-3, 4)
    coords = (grid[:, None] + fine[None, :]).reshape(-1)
    inside = coords[:, None] ** 2 + coords[None, :] ** 2 <= radius**2
    ref = inside.reshape(7, 48, 7, 48).mean(axis=(1, 3))
    ref /= ref.sum()
    got = _np(S.disk_kernels(np.float32([radius]), max_radius=3, xp=TF))[0]
    np.testing.assert_allclose(got.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, ref, atol=3e-3)
    np.testing.assert_allclose(got, got.T, atol=1e-6)
    np.testing.assert_allclose(got, got[::-1], atol=1e-6)


def test_defocus_matches_a_numpy_convolution_loop(small):
    radius = np.float32([2.3, 1.1])
    got = _np(S.defocus_blur(small, radius, xp=TF, max_radius=3))
    kernels = _np(S.disk_kernels(radius, max_radius=3, xp=TF))
    for b in range(2):
        ref = _correlate_reflect(small[b], kernels[b])
        np.testing.assert_allclose(got[b], ref, atol=1e-5)


# --- motion ------------------------------------------------------------------


def _line_reference(length, angle, half):
    """Dense NumPy bilinear splat of a segment of ``length`` px at ``angle``."""
    t = np.linspace(-0.5, 0.5, 20001) * length
    px, py = t * np.cos(angle), -t * np.sin(angle)
    grid = np.arange(-half, half + 1)
    wx = np.maximum(0, 1 - np.abs(px[:, None] - grid))
    wy = np.maximum(0, 1 - np.abs(py[:, None] - grid))
    ref = wy.T @ wx
    return ref / ref.sum()


@pytest.mark.parametrize(
    "length,angle", [(3.0, 0.0), (5.5, 0.6), (6.0, np.pi / 2), (4.2, 2.4)]
)
def test_line_kernel_matches_a_dense_numpy_splat(length, angle):
    got = _np(S.line_kernels(np.float32([length]), np.float32([angle]), 6, xp=TF))[0]
    np.testing.assert_allclose(got, _line_reference(length, angle, 3), atol=2e-3)


def test_line_kernel_known_values():
    length, angle = np.float32([0, 1, 2, 2]), np.float32([0, 0, 0, np.pi / 2])
    got = _np(S.line_kernels(length, angle, 4, xp=TF))
    centre = np.zeros((5, 5)); centre[2, 2] = 1
    np.testing.assert_allclose(got[0], centre, atol=1e-6)  # length 0: identity
    np.testing.assert_allclose(got[1, 2, 1:4], [1 / 8, 3 / 4, 1 / 8], atol=1e-3)
    np.testing.assert_allclose(got[2, 2, 1:4], [1 / 4, 1 / 2, 1 / 4], atol=1e-3)
    np.testing.assert_allclose(got[3], got[2].T, atol=1e-6)  # pi/2: vertical


def test_motion_matches_a_numpy_convolution_loop(small):
    length, angle = np.float32([5.0, 2.5]), np.float32([0.7, -1.2])
    got = _np(S.motion_blur(small, length, angle, xp=TF, max_length=6))
    kernels = _np(S.line_kernels(length, angle, 6, xp=TF))
    for b in range(2):
        ref = _correlate_reflect(small[b], kernels[b])
        np.testing.assert_allclose(got[b], ref, atol=1e-5)


@pytest.mark.parametrize("name", ["defocus_blur", "motion_blur"])
def test_blurs_reflect_at_the_border_no_dark_frame(name):
    flat = np.full((1, 10, 10, 3), 0.7, np.float32)
    np.testing.assert_allclose(_np(_apply(name, flat, [STRONG[name]])), flat, atol=1e-6)


# --- JPEG --------------------------------------------------------------------


@pytest.mark.parametrize("quality", [1, 10, 35, 50, 75, 90, 100])
def test_quantization_tables_equal_libjpeg(quality):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "JPEG", quality=quality)
    tables = Image.open(buf).quantization
    luma, chroma = S.jpeg_quantization_tables(np.float32([quality]), xp=TF)
    np.testing.assert_array_equal(_np(luma)[0].ravel(), tables[0])
    np.testing.assert_array_equal(_np(chroma)[0].ravel(), tables[1])


def test_jpeg_matches_pil_and_tensorflow_on_real_cells(cells):
    """Our decoded images sit much closer to libjpeg's than either to the original."""
    qualities = (10, 30, 50, 75, 90)
    x = cells.astype(np.float32) / 255
    batch = np.concatenate([x] * len(qualities))
    q = np.repeat(np.float32(qualities), len(x))  # one call, per-image qualities
    ours = _np(S.jpeg_compress(batch, q, xp=TF)).reshape((len(qualities),) + x.shape)

    def psnr(y):
        return 10 * np.log10(1 / np.mean((y - x) ** 2))

    for k, quality in enumerate(qualities):
        pil = np.stack([_pil_jpeg(img, quality) for img in cells])
        tfj = [tf.image.adjust_jpeg_quality(img, quality).numpy() for img in cells]
        tfj = np.stack(tfj).astype(np.float32) / 255
        jpeg_error = np.abs(pil - x).mean()
        assert np.abs(ours[k] - pil).mean() < 0.35 * jpeg_error, quality
        assert abs(psnr(ours[k]) - psnr(pil)) < 0.5, quality
        assert abs(psnr(ours[k]) - psnr(tfj)) < 0.5, quality
        # within about one grey level of libjpeg's own output:
        assert np.abs(ours[k] - pil).mean() < 1.5 / 255, quality


def test_jpeg_greyscale_matches_pil(cells):
    grey = np.asarray(Image.fromarray(cells[0]).convert("L"))
    x = grey[None, :, :, None].astype(np.float32) / 255
    got = _np(S.jpeg_compress(x, np.float32([30]), xp=TF))[0, :, :, 0]
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "JPEG", quality=30)
    pil = np.asarray(Image.open(buf)).astype(np.float32) / 255
    assert np.abs(got - pil).mean() < 0.3 * np.abs(pil - x[0, :, :, 0]).mean()


def _block_edge_ratio(images):
    """Mean |horizontal step| across 8-px block edges over that inside blocks."""
    luma = images @ np.float32([0.299, 0.587, 0.114])
    steps = np.abs(np.diff(luma, axis=2))  # step j: between columns j and j + 1
    across = (np.arange(steps.shape[2]) % 8) == 7
    return steps[:, :, across].mean() / steps[:, :, ~across].mean()


def test_jpeg_shows_the_8x8_block_structure(cells):
    x = cells.astype(np.float32) / 255
    ours = _np(S.jpeg_compress(x, np.full(len(x), 8, np.float32), xp=TF))
    pil = np.stack([_pil_jpeg(img, 8) for img in cells])
    clean, blocky = _block_edge_ratio(x), _block_edge_ratio(ours)
    assert abs(clean - 1) < 0.1  # no grid in the original
    assert blocky > 1.5 * clean  # steps concentrate on block edges
    assert abs(blocky - _block_edge_ratio(pil)) < 0.25 * _block_edge_ratio(pil)


def test_jpeg_q100_is_close_to_identity(cells):
    x = cells[:4].astype(np.float32) / 255
    q = np.full(4, 100, np.float32)
    full = _np(S.jpeg_compress(x, q, xp=TF, chroma_subsampling=False))
    assert np.abs(full - x).mean() < 0.5 / 255
    assert np.abs(full - x).max() < 4 / 255
    sub = _np(S.jpeg_compress(x, q, xp=TF))  # 4:2:0 loses some chroma, as libjpeg
    pil = np.stack([_pil_jpeg(img, 100) for img in cells[:4]])
    assert np.abs(sub - x).mean() < 1.1 * np.abs(pil - x).mean()


def test_jpeg_pads_sizes_that_are_not_multiples_of_16(cells):
    x = cells[:2, :37, :21].astype(np.float32) / 255
    got = _np(S.jpeg_compress(x, np.float32([40, 40]), xp=TF))
    assert got.shape == x.shape
    pil = np.stack([_pil_jpeg(img, 40) for img in cells[:2, :37, :21]])
    assert np.abs(got - pil).mean() < 0.35 * np.abs(pil - x).mean()


# --- pixelate ----------------------------------------------------------------


def _pil_pixelate(plane, factor):
    """ImageNet-C's pixelate on one float plane: PIL BOX down, BOX up."""
    h, w = plane.shape
    small = Image.fromarray(plane, mode="F").resize(
        (int(np.floor(w * factor + 0.5)), int(np.floor(h * factor + 0.5))), Image.BOX
    )
    return np.asarray(small.resize((w, h), Image.BOX))


@pytest.mark.parametrize("factor", [0.5, 0.3, 0.45, 0.7, 0.9])
def test_pixelate_matches_pil_box_resizes(crop, factor):
    x = crop[:, :30, :24]  # non-square, sizes not multiples of most blocks
    got = _np(S.pixelate(x, np.float32([factor]), xp=TF))[0]
    for c in range(3):
        ref = _pil_pixelate(np.ascontiguousarray(x[0, :, :, c]), factor)
        np.testing.assert_allclose(got[:, :, c], ref, atol=1e-5)


def test_pixelate_block_means():
    x = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1) / 63
    got = _np(S.pixelate(x, np.float32([0.25]), xp=TF))[0, :, :, 0]
    blocks = x[0, :, :, 0].reshape(2, 4, 2, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(got, np.kron(blocks, np.ones((4, 4))), atol=1e-6)


# --- shared properties ---------------------------------------------------------

ZERO = {"defocus_blur": 0.0, "motion_blur": 0.0, "pixelate": 1.0}


@pytest.mark.parametrize("name", sorted(ZERO))
def test_zero_strength_is_the_identity(name, crop):
    x = np.concatenate([crop, crop[:, ::-1]])
    np.testing.assert_allclose(_np(_apply(name, x, [ZERO[name]] * 2)), x, atol=1e-6)


@pytest.mark.parametrize("name", KERNELS)
def test_parameters_are_per_image(name, crop):
    x = np.concatenate([crop, crop[:, ::-1]])
    strength = [STRONG[name], WEAK[name]]
    both = _np(_apply(name, x, strength))
    angle = _np(_angles(np.float32(strength)))
    for b in range(2):
        if name == "motion_blur":  # keep each image's own angle
            one = x[b : b + 1]
            alone = S.motion_blur(one, [strength[b]], angle[b], xp=TF, max_length=6)
            alone = _np(alone)
        else:
            alone = _np(_apply(name, x[b : b + 1], [strength[b]]))
        np.testing.assert_allclose(both[b], alone[0], atol=2e-6)
    assert not np.allclose(both[0], both[1][:, ::-1], atol=1e-3)


def _error(x, y):
    return np.abs(_np(y) - x).mean(axis=(1, 2, 3))


@HYPO
@given(st.floats(0.0, 3.0), st.floats(0.05, 3.0))
def test_defocus_error_grows_with_the_radius(crop, radius, step):
    x = np.concatenate([crop, crop])
    radii = np.float32([radius, radius + step])
    e = _error(x, S.defocus_blur(x, radii, xp=TF, max_radius=6))
    assert e[1] >= e[0] - 1e-7


@HYPO
@given(st.floats(0.0, 6.0), st.floats(0.1, 4.0), st.floats(-np.pi, np.pi))
def test_motion_error_grows_with_the_length(crop, length, step, angle):
    x = np.concatenate([crop, crop])
    e = _error(x, S.motion_blur(x, np.float32([length, length + step]), angle, xp=TF))
    assert e[1] >= e[0] - 1e-7


@HYPO
@given(st.floats(1.0, 90.0), st.floats(10.0, 50.0))
def test_jpeg_error_falls_with_the_quality(crop, quality, step):
    x = np.concatenate([crop, crop])
    e = _error(x, S.jpeg_compress(x, np.float32([quality, quality + step]), xp=TF))
    assert e[1] < e[0]


@HYPO
@given(st.floats(0.1, 0.85), st.floats(0.15, 0.5))
def test_pixelate_error_falls_with_the_factor(crop, factor, step):
    x = np.concatenate([crop, crop])
    f = np.float32([factor, min(factor + step, 1.0)])
    e = _error(x, S.pixelate(x, f, xp=TF))
    assert e[1] < e[0]


@pytest.mark.parametrize("name", KERNELS)
def test_compiles_with_xla(name, crop):
    x = tf.constant(np.concatenate([crop, crop[:, ::-1]])[:, :16, :16])
    strength = tf.constant([STRONG[name], WEAK[name]], tf.float32)
    xla = tf.function(lambda a, s: _apply(name, a, s), jit_compile=True)
    # Blurs take a different path under XLA (banded matmuls, not depthwise).
    eager = _np(_apply(name, x, strength))
    np.testing.assert_allclose(xla(x, strength).numpy(), eager, atol=2e-5)


@pytest.mark.parametrize("name", KERNELS)
def test_in_tf_data_with_an_unknown_batch_size(name, crop):
    x = np.concatenate([crop] * 3)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2)
    out = ds.map(lambda a: _apply(name, a, tf.fill([tf.shape(a)[0]], STRONG[name])))
    got = np.concatenate([b.numpy() for b in out])
    parts = (x[:2], x[2:])
    want = [_np(_apply(name, part, [STRONG[name]] * len(part))) for part in parts]
    np.testing.assert_allclose(got, np.concatenate(want), atol=1e-6)


@pytest.mark.parametrize("name", KERNELS)
def test_float16_in_float16_out_and_clipped(name, crop):
    x32 = np.concatenate([crop, np.clip(crop * 1.5, 0, 1)])
    y16 = _apply(name, tf.constant(x32, tf.float16), [STRONG[name]] * 2)
    assert y16.dtype == tf.float16
    y32 = _np(_apply(name, x32, [STRONG[name]] * 2))
    np.testing.assert_allclose(_np(y16).astype(np.float32), y32, atol=2e-3)
    assert y32.min() >= 0 and y32.max() <= 1


@pytest.mark.parametrize("name", KERNELS)
def test_same_result_with_the_jax_ops(name, crop):
    jax = pytest.importorskip("jax")
    x = np.concatenate([crop, crop[:, ::-1]])[:, :16, :16]
    strength = np.float32([STRONG[name], WEAK[name]])
    jitted = jax.jit(lambda a, s: _apply(name, a, s, xp=current_backend("jax")))
    jax_out = jitted(x, strength)
    np.testing.assert_allclose(_np(jax_out), _np(_apply(name, x, strength)), atol=2e-5)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="images.shape=\\(8, 8, 3\\)"):
        S.defocus_blur(np.zeros((8, 8, 3), np.float32), 1.0, xp=TF)
    with pytest.raises(ValueError, match=r"jpeg_compress.*shape=\(1, 8, 8, 2\)"):
        S.jpeg_compress(np.zeros((1, 8, 8, 2), np.float32), 50.0, xp=TF)
    with pytest.raises(ValueError, match="Received: max_radius=8"):
        S.defocus_blur(np.zeros((1, 8, 8, 3), np.float32), 1.0, xp=TF, max_radius=8)
    with pytest.raises(ValueError, match="Received: max_length=0"):
        S.motion_blur(np.zeros((1, 8, 8, 3), np.float32), 1.0, 0.0, xp=TF, max_length=0)


@pytest.mark.parametrize("kernel", ["defocus", "motion"])
def test_blurs_compile_with_xla_on_an_empty_batch(kernel):
    """A composite (RandomCorruption) hands a corruption an empty sub-batch;
    XLA's MirrorPad refused it (RET_CHECK on a zero-size dimension)."""
    import tensorflow as tf

    def blur(a):
        n = tf.shape(a)[0]
        if kernel == "defocus":
            return S.defocus_blur(a, tf.fill([n], 2.0))
        return S.motion_blur(a, tf.fill([n], 4.0), tf.fill([n], 0.5))

    f = tf.function(blur, jit_compile=True)
    assert tuple(f(tf.zeros((0, 20, 16, 3))).shape) == (0, 20, 16, 3)
    x = np.random.default_rng(0).uniform(0, 1, (2, 20, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(f(x)), np.asarray(blur(x)), atol=1e-5)
