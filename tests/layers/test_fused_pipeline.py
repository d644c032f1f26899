"""FusedPipeline: the fused passes equal the per-operation chain for fixed draws.

Runs on the active Keras backend (``.ci/run`` runs tests/layers on TensorFlow
and on JAX); the TensorFlow-only modes (``tf.function``, XLA, ``tf.data``)
skip elsewhere.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import celltl
from celltl import (
    AugMix,
    ColorDegenerate,
    Cutout,
    FusedPipeline,
    FusionOptions,
    GridMask,
    RandAugment,
    RandomAffine,
    RandomApply,
    RandomChoice,
    RandomWhiteBalance,
    Shear,
    fuse,
)

BACKEND = keras.backend.backend()
TF_ONLY = pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow modes")


def _smooth(n=8, size=32, seed=0):
    """Smooth images in (0, 255): interpolation differences stay small."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([128 + 90 * np.sin(xx / 6.0 + k) * np.cos(yy / 7.0) for k in range(3)], -1)
    shift = rng.uniform(-20, 20, (n, 1, 1, 3))
    return np.clip(base[None] + shift, 0, 255).astype("float32")


def _both(layers, x):
    policy = FusedPipeline(layers)
    positions = policy.sample(x)
    fused = np.asarray(policy.apply_draws(x, positions, fused=True))
    chain = np.asarray(policy.apply_draws(x, positions, fused=False))
    return fused, chain


def _pixel_layers():
    return [
        RandomApply(ColorDegenerate(factor=(0.2, 1.0), seed=1), rate=0.5, seed=2),
        RandomChoice(
            [
                keras.layers.RandomBrightness(0.3, value_range=(0, 255), seed=3),
                keras.layers.RandomContrast(0.5, value_range=(0, 255), seed=4),
                keras.layers.AutoContrast(value_range=(0, 255)),
                keras.layers.Solarization(0.5, value_range=(0, 255), seed=5),
                keras.layers.RandomPosterization((4, 6), value_range=(0, 255), seed=6),
                keras.layers.RandomSharpness(0.5, value_range=(0, 255), seed=7),
                GridMask(seed=8),
                Cutout(num_holes=(1, 2), seed=9),
            ],
            num=2,
            seed=10,
        ),
        RandomWhiteBalance(seed=11),
    ]


def test_pixel_and_mask_operations_equal_the_chain_exactly():
    # No geometry is moved across another operation: one pass per family
    # (parameter selection) must give the chain's images.
    fused, chain = _both(_pixel_layers(), _smooth(16))
    np.testing.assert_allclose(fused, chain, atol=2e-3)


def test_geometry_is_one_resample_within_interpolation_tolerance():
    layers = [
        keras.layers.RandomFlip("horizontal_and_vertical", seed=1),
        RandomAffine(rotation=20.0, zoom=(-0.1, 0.1), seed=2),
        RandomApply(Shear(x_factor=0.1, y_factor=0.1, seed=3), rate=0.5, seed=4),
    ]
    fused, chain = _both(layers, _smooth(16))
    # Borders differ (one reflection instead of chained ones); inside, the
    # difference is interpolation only (chained bilinear blurs more).
    inner = np.abs(fused - chain)[:, 6:-6, 6:-6]
    assert inner.max() < 3.0, inner.max()
    assert np.abs(fused - chain).mean() < 1.0


def test_exclusive_geometry_of_one_kind_selects_parameters_per_image():
    # One choice round over several rotations, translations and shears: the
    # engine builds one matrix per kind from each image's own parameters. No
    # geometry moves across another operation, so every image must equal the
    # chain's (one resample each), whichever branch it drew.
    layers = [
        RandomChoice(
            [
                RandomAffine(rotation=40.0, seed=1),
                RandomAffine(translation=(0.2, 0.0), seed=2),
                RandomAffine(zoom=(-0.3, 0.3), seed=3),
                Shear(x_factor=0.3, y_factor=0.0, seed=4),
                Shear(x_factor=0.0, y_factor=0.3, seed=5),
                ColorDegenerate(seed=6),
            ],
            num=1,
            seed=7,
        )
    ]
    x = _smooth(24)
    policy = FusedPipeline(layers)
    positions = policy.sample(x)
    drawn = [np.asarray(item.active) for item in positions[0]]
    assert all(d.any() for d in drawn[:5]), [d.sum() for d in drawn]
    fused = np.asarray(policy.apply_draws(x, positions, fused=True))
    chain = np.asarray(policy.apply_draws(x, positions, fused=False))
    np.testing.assert_allclose(fused, chain, atol=0.05)
    assert np.abs(chain - x).mean() > 1.0


def test_flips_and_nearest_geometry_compose_exactly():
    x = _smooth(8)
    layers = [
        keras.layers.RandomFlip("horizontal_and_vertical", seed=1),
        keras.layers.RandomFlip("horizontal", seed=2),
    ]
    fused, chain = _both(layers, x)
    np.testing.assert_allclose(fused, chain, atol=1e-4)


def test_masks_move_with_the_geometry_after_them():
    # Nearest sampling: the mask is evaluated where the later geometry reads
    # it, so the holes land where the chain puts them.
    layers = [
        GridMask(ratio=0.3, seed=1),
        RandomAffine(rotation=30.0, interpolation="nearest", fill_mode="nearest", seed=2),
    ]
    x = np.full((8, 32, 32, 3), 200.0, "float32")
    fused, chain = _both(layers, x)
    agree = ((fused == 0) == (chain == 0)).mean()
    assert agree > 0.97, agree
    assert 0.15 < (fused == 0).mean() < 0.45


def test_unknown_layer_still_runs_unfused():
    marker = keras.layers.Lambda(lambda t: t * 0.0 + 7.0)
    policy = FusedPipeline([ColorDegenerate(seed=1), marker, Cutout(seed=2)])
    out = np.asarray(policy(_smooth(4)))
    assert set(np.unique(out)) <= {0.0, 7.0}
    assert (out == 7.0).mean() > 0.5


def test_chain_path_equals_the_unfused_policy_with_select():
    # Same seeds, same draws: the engine's per-operation path reproduces the
    # unfused layers (strategy "select"), so the fused engine draws from the
    # unfused policy's distributions.
    x = _smooth(8)
    plain = celltl.light_policy(acquisition=False, strategy="select", fused=False, seed=3)
    engine = celltl.light_policy(acquisition=False, strategy="select", fused=True, seed=3)
    expected = np.asarray(plain(x))
    got = np.asarray(engine.apply_draws(x, engine.sample(x), fused=False))
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_augmix_mixes_fused_chains():
    x = _smooth(6)
    layers = [AugMix(severity=0.3, seed=1)]
    fused, chain = _both(layers, x)
    inner = np.abs(fused - chain)[:, 6:-6, 6:-6]
    assert inner.mean() < 2.0, inner.mean()
    # ...and AugMix did change the images (an identity would also agree).
    assert np.abs(chain - x).mean() > 1.0 and np.abs(fused - x).mean() > 1.0


def test_augmix_chain_j_of_image_i_runs_draw_row_j_times_batch_plus_i():
    # The chains run as one program over the batch repeated ``width`` times:
    # chain j of image i must take the draws of row j * B + i and its result
    # must be weighted into image i. Only the last chain rotates (every
    # other step of every chain is the identity), only it is weighted and the
    # original gets no weight: each image must come out as its own rotation
    # by that chain's angle for it (angles differ per row, images per image).
    x = _smooth(6)
    batch = 6
    policy = FusedPipeline([AugMix(severity=0.5, seed=1)])
    (adapter, draws, _, _), = policy.sample(x)[0]
    names = [op.layer.name for op in adapter.operations]
    k = next(i for i, n in enumerate(names) if "rotate" in n)
    identity = len(names)
    last = draws["width"] - 1
    rows = np.arange(batch) + last * batch
    op = np.full((draws["width"] * batch,), identity, "int32")
    op[rows] = k
    steps = [dict(step, op=keras.ops.convert_to_tensor(op if i == 0 else np.full_like(op, identity)))
             for i, step in enumerate(draws["steps"])]
    g = np.zeros((draws["width"], batch), "float32")
    g[last] = 1.0
    draws = dict(draws, steps=steps, g=keras.ops.convert_to_tensor(g),
                 a=keras.ops.zeros((batch,)), b=keras.ops.ones((batch,)))
    rotate = adapter.operations[k]
    own = rotate.gather(draws["steps"][0]["ops"][k], keras.ops.convert_to_tensor(rows, "int32"),
                        policy.backend)
    expected = np.clip(np.asarray(rotate.apply(x, own, policy.backend)), 0, 255)
    assert np.abs(expected - x)[:, 4:-4, 4:-4].mean() > 1.0  # the rotation shows
    for fused in (True, False):
        got = np.asarray(policy.apply_draws(x, [[(adapter, draws, None)]], fused=fused))
        inner = np.abs(got - expected)[:, 4:-4, 4:-4]
        assert inner.mean() < 0.5, (fused, inner.mean())


def _partial_augmix_layers():
    return [
        Shear(x_factor=0.1, y_factor=0.1, seed=1),
        RandomApply(AugMix(severity=0.3, seed=2), rate=0.5, seed=3),
        RandomApply(keras.layers.AutoContrast(value_range=(0, 255)), rate=0.5, seed=4),
        RandomApply(keras.layers.RandomSharpness(0.5, value_range=(0, 255), seed=5), 0.5, seed=6),
    ]


def test_images_that_drew_augmix_take_their_own_path_with_the_same_draws():
    # Only some images drew AugMix: they run it as a sub-batch (TensorFlow),
    # the others one pass; for the same draws both equal the chain.
    x = _smooth(12)
    fused, chain = _both(_partial_augmix_layers(), x)
    inner = np.abs(fused - chain)[:, 6:-6, 6:-6]
    assert inner.mean() < 2.0, inner.mean()


def _split_middle_layers():
    # Exact operations (flips, pointwise colour) before and after an unknown
    # layer that only some images draw.
    return [
        keras.layers.RandomFlip("horizontal_and_vertical", seed=1),
        RandomApply(ColorDegenerate(factor=(0.2, 1.0), seed=2), rate=0.7, seed=8),
        RandomApply(keras.layers.Lambda(lambda t: t * 0.5 + 40.0), rate=0.5, seed=4),
        keras.layers.RandomFlip("horizontal", seed=5),
        RandomApply(ColorDegenerate(factor=(0.2, 1.0), seed=6), rate=0.7, seed=7),
    ]


@pytest.mark.parametrize("traced", [False, True])
def test_split_images_take_every_operation_once(traced):
    # The images that drew the unknown layer take the chain up to it on their
    # own path and the rest with the others: each operation once, exactly
    # the chain (no interpolation here), for both groups of images.
    if traced and BACKEND != "tensorflow":
        pytest.skip("TensorFlow modes")
    policy = FusedPipeline(_split_middle_layers())
    x = _smooth(16)

    def both(t):
        positions = policy.sample(t)
        (drew,) = [item[2] for p in positions for item in p if item[0].kind == "opaque"]
        first = positions[1][0][2]  # who drew the colour operation before it
        fused = policy.apply_draws(t, positions, fused=True)
        return fused, policy.apply_draws(t, positions, fused=False), drew, first

    if traced:
        import tensorflow as tf

        both = tf.function(both)
        x = tf.constant(x)
    fused, chain, drew, first = (np.asarray(v) for v in both(x))
    assert 0 < drew.sum() < len(drew)  # both groups
    # Among the split images, some drew the operation before the split and
    # some did not (the split path must keep their own activities).
    assert 0 < (first & drew).sum() < drew.sum()
    np.testing.assert_allclose(fused, chain, atol=1e-3)


def test_augmix_drawn_when_it_runs_keeps_the_rate():
    # In ``augment`` AugMix draws for the images that drew it only: about
    # half the images change, the others are returned exactly.
    x = _smooth(64, size=16, seed=3)
    policy = FusedPipeline([RandomApply(AugMix(severity=0.5, seed=1), rate=0.5, seed=2)])
    out = np.asarray(policy(x, training=True))
    changed = np.abs(out - x).reshape(64, -1).max(axis=1) > 0
    assert 16 <= changed.sum() <= 48, changed.sum()
    np.testing.assert_array_equal(out[~changed], x[~changed])


def _augmix_choice_layers():
    return [
        Shear(x_factor=0.1, y_factor=0.1, seed=1),
        RandomChoice(
            [
                AugMix(severity=0.3, seed=2),
                ColorDegenerate(seed=3),
                RandAugment(num_ops=2, magnitude=0.3, seed=4),
                Cutout(seed=5),
            ],
            num=2,
            seed=6,
        ),
    ]


def _mixes(positions):
    return [item for position in positions for item in position if item[0].kind == "mix"]


def test_augmix_drawn_in_either_round_runs_once_with_each_images_own_draws(monkeypatch):
    # AugMix is one branch of a two-round choice: the images that drew it in
    # round 1 and those that drew it in round 2 take it as one call (one
    # AugMix in the program), each with the draws of its own round, and the
    # images equal the chain that runs it once per round.
    x = _smooth(16)
    merged = FusedPipeline(_augmix_choice_layers())
    positions = merged.sample(x)
    plain = FusedPipeline(_augmix_choice_layers(), options=FusionOptions(merge_rounds=False))
    # same seeds: same draws
    unmerged = plain.sample(x)
    assert len(_mixes(positions)) == 1 and len(_mixes(unmerged)) == 2
    first, second = (np.asarray(item[2]) for item in _mixes(unmerged))
    assert first.any() and second.any() and not (first & second).any()
    np.testing.assert_array_equal(np.asarray(_mixes(positions)[0][2]), first | second)
    expected = np.asarray(plain.apply_draws(x, unmerged, fused=False))
    assert np.abs(expected - x)[first | second].mean() > 1.0  # AugMix shows
    chain = np.asarray(merged.apply_draws(x, positions, fused=False))
    np.testing.assert_allclose(chain, expected, atol=1e-3)
    fused = np.asarray(merged.apply_draws(x, positions, fused=True))
    inner = np.abs(fused - expected)[:, 6:-6, 6:-6]
    assert inner.mean() < 2.0, inner.mean()


def test_choice_with_two_unknown_branches_is_not_merged():
    # Two branches that need the image as it stands: an image may draw both
    # (one per round), so each round keeps its own.
    a = keras.layers.Lambda(lambda t: t + 1.0)
    b = keras.layers.Lambda(lambda t: t * 0.5)
    policy = FusedPipeline([RandomChoice([a, b, ColorDegenerate(seed=1)], num=2, seed=2)])
    positions = policy.sample(_smooth(4))
    opaque = [item for position in positions for item in position if item[0].kind == "opaque"]
    assert len(opaque) == 4


@pytest.mark.parametrize("make", ["study", "light", "acquisition", "randaugment"])
def test_policies_run_fused_in_range(make):
    x = _smooth(8, size=32)
    policy = {
        "study": lambda: celltl.study_policy(fused=True, seed=0),
        "light": lambda: celltl.light_policy(seed=0),
        "acquisition": lambda: celltl.acquisition_policy(seed=0),
        "randaugment": lambda: fuse([RandAugment(num_ops=2, magnitude=0.5, seed=0)]),
    }[make]()
    out = np.asarray(policy(x))
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 255
    assert np.abs(out - x).mean() > 0.5


def test_fuse_keeps_the_layers_and_inference_is_identity():
    pipe = keras.layers.Pipeline([keras.layers.RandomFlip(seed=1), Cutout(seed=2)], name="mine")
    fused = fuse(pipe)
    assert fused.name == "mine" and fused.layers[1] is pipe.layers[1]
    x = _smooth(2)
    np.testing.assert_array_equal(np.asarray(fused(x, training=False)), x)


def test_config_round_trip():
    policy = celltl.light_policy(seed=0)
    clone = FusedPipeline.from_config(policy.get_config())
    assert clone.fused and [type(l) for l in clone.layers] == [type(l) for l in policy.layers]


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="fused"):
        FusedPipeline([Cutout()], fused="yes")
    with pytest.raises(ValueError, match="layers"):
        FusedPipeline([])


@TF_ONLY
@pytest.mark.parametrize("jit", [False, True])
def test_tf_function_and_xla(jit):
    import tensorflow as tf

    policy = FusedPipeline(_pixel_layers() + [RandomAffine(rotation=30, seed=12)])
    fn = tf.function(lambda t: policy(t, training=True), jit_compile=jit)
    x = _smooth(8)
    out = np.asarray(fn(tf.constant(x)))
    assert out.shape == (8, 32, 32, 3) and out.min() >= 0 and out.max() <= 255
    assert np.abs(out - x).mean() > 1.0  # the policy did something


@TF_ONLY
@pytest.mark.parametrize("make", ["pixels", "geometry", "augmix-choice", "study-no-acquisition"])
def test_under_xla_the_fused_policy_equals_the_unfused_one(make):
    # The GPU training path compiles the whole step with XLA
    # (jit_compile=True): there the engine runs without sub-batches. For
    # fixed draws, compiled, the fused passes give what they give eagerly
    # (where they take the sub-batch paths), and so does the per-operation
    # chain; without geometry they equal each other exactly; and they differ
    # from the input. (Layers that draw when they run, the corruptions of
    # ``acquisition_policy``, draw for other shapes on the two paths: they
    # are compared with seeds in tests/layers/test_compile_counts.py.)
    import tensorflow as tf

    policy = {
        "pixels": lambda: FusedPipeline(_pixel_layers()),
        "geometry": lambda: FusedPipeline(_pixel_layers() + [RandomAffine(rotation=30, seed=12)]),
        "augmix-choice": lambda: FusedPipeline(_augmix_choice_layers()),
        "study-no-acquisition": lambda: celltl.study_policy(acquisition=False, seed=0),
    }[make]()
    x = tf.constant(_smooth(8))
    positions = policy.sample(x)  # fixed draws, captured by the compiled functions
    out = {}
    for fused in (True, False):
        compiled = tf.function(lambda t, fused=fused: policy.apply_draws(t, positions, fused),
                               jit_compile=True)
        got = np.asarray(compiled(x))
        want = np.asarray(policy.apply_draws(x, positions, fused))
        off = np.abs(got - want)
        if fused and make in ("augmix-choice", "study-no-acquisition"):
            # Eagerly the images that drew AugMix take their own path and the
            # others one resample (the sub-batch schedule); compiled, all take
            # the split path: the same draws, geometry composed differently.
            assert off.mean() < 1.0 and np.median(off) < 0.05, (off.mean(), np.median(off))
        else:
            assert off.mean() < 0.05 and (off > 1.0).mean() < 0.005, (fused, off.mean())
        assert np.abs(got - np.asarray(x)).mean() > 1.0  # the policy did something
        out[fused] = got
    if make == "pixels":
        np.testing.assert_allclose(out[True], out[False], atol=2e-3)


def _both_traced(policy, x):
    """The fused and the per-operation path of ``policy`` for the same draws,
    inside one ``tf.function`` (TensorFlow graph mode)."""
    import tensorflow as tf

    @tf.function
    def both(t):
        positions = policy.sample(t)
        return policy.apply_draws(t, positions, True), policy.apply_draws(t, positions, False)

    fused, chain = both(x)
    return np.asarray(fused), np.asarray(chain)


@TF_ONLY
def test_tf_function_fused_equals_chain():
    import tensorflow as tf

    policy = FusedPipeline(_pixel_layers())
    x = tf.constant(_smooth(8))

    fused, chain = _both_traced(policy, x)
    np.testing.assert_allclose(fused, chain, atol=2e-3)


@TF_ONLY
def test_position_on_the_images_that_drew_it_equals_the_batch_pass(monkeypatch):
    # A position few images drew runs on those images only (a padded
    # sub-batch, its draws, statistics and mask coordinates gathered, the
    # result written back): the same images as the pass over the batch.
    import tensorflow as tf

    policy = FusedPipeline(_pixel_layers() + [Shear(x_factor=0.3, y_factor=0.3, seed=12)])
    whole, sparse = policy.with_options(sparse=0.0), policy.with_options(sparse=math.inf)
    x = tf.constant(_smooth(12))

    @tf.function
    def both(t):
        positions = policy.sample(t)
        batch = whole.apply_draws(t, positions, True)
        rows = sparse.apply_draws(t, positions, True)
        return batch, rows

    for _ in range(3):  # new draws each call
        batch, rows = (np.asarray(v) for v in both(x))
        np.testing.assert_allclose(rows, batch, atol=1e-3)
        assert np.abs(batch - np.asarray(x)).mean() > 1.0  # the policy did something


@pytest.mark.parametrize("geometry", [False, True], ids=["callers-batch", "own-batch"])
@TF_ONLY
def test_sub_batch_results_are_written_in_place_only_into_the_engines_own_batches(
    monkeypatch, geometry
):
    # Results of sub-batches (a position few images drew, the sharpness
    # blend) are written in place into a batch one of the engine's kernels
    # made, and into a copy of anything else: without geometry the first
    # positions read the caller's batch itself (the blend alone runs no
    # kernel), which must come back untouched. Same images either way.
    import tensorflow as tf

    layers = [
        RandomApply(keras.layers.RandomSharpness(0.5, value_range=(0, 255), seed=1), rate=0.5, seed=2),
        RandomApply(ColorDegenerate(factor=(0.0, 0.5), seed=3), rate=0.2, seed=4),
        RandomApply(Cutout(num_holes=(1, 2), seed=5), rate=0.2, seed=6),
        keras.layers.RandomSharpness(0.5, value_range=(0, 255), seed=7),
    ]
    if geometry:
        layers.insert(0, RandomAffine(rotation=30.0, seed=8))
    policy = FusedPipeline(layers)
    data = _smooth(32)
    x = tf.constant(data)

    copies = policy.with_options(in_place=False)

    @tf.function
    def both(t):
        positions = policy.sample(t)
        copied = copies.apply_draws(t, positions, True)
        in_place = policy.apply_draws(t, positions, True)
        return copied, in_place

    graph = both.get_concrete_function(x).graph
    ops = [op.type for op in graph.get_operations()]
    ops += [n.op for f in graph.as_graph_def().library.function for n in f.node_def]
    # Writes of the in-place pass: the blend of the first position, the
    # colour and the Cutout positions (the blend of the last, every image's,
    # writes nothing). Without geometry the first two go into a copy (the
    # caller's batch; the copy the first made, or that batch where no image
    # drew the blend), the third into the second's copy.
    assert ops.count("InplaceUpdate") == (3 if geometry else 1)
    for _ in range(3):  # new draws each call
        copied, in_place = (np.asarray(v) for v in both(x))
        np.testing.assert_array_equal(np.asarray(x), data)  # the caller's batch
        np.testing.assert_allclose(in_place, copied, atol=1e-4)
        assert np.abs(copied - data).mean() > 1.0  # the policy did something


@TF_ONLY
def test_gradients_flow_through_in_place_writes_as_through_copies(monkeypatch):
    # tf.raw_ops.InplaceUpdate has no gradient of its own: the engine gives
    # the write's, so a model with trainable layers before the policy still
    # trains. For the same draws: the same gradient as the writes into copies.
    import tensorflow as tf

    policy = FusedPipeline([
        RandomAffine(rotation=30.0, seed=8),
        RandomApply(keras.layers.RandomSharpness(0.5, value_range=(0, 255), seed=1), rate=0.5, seed=2),
        RandomApply(ColorDegenerate(factor=(0.0, 0.5), seed=3), rate=0.2, seed=4),
    ])
    x = tf.constant(_smooth(32))
    weights = tf.constant(np.random.default_rng(1).normal(size=(32, 32, 32, 3)).astype("float32"))

    runs = [policy.with_options(in_place=in_place) for in_place in (False, True)]

    @tf.function
    def both(t):
        positions = policy.sample(t)
        grads = []
        for run in runs:
            with tf.GradientTape() as tape:
                tape.watch(t)
                loss = tf.reduce_sum(run.apply_draws(t, positions, True) * weights)
            grads.append(tape.gradient(loss, t))
        return grads

    for _ in range(3):  # new draws each call
        copied, in_place = (np.asarray(v) for v in both(x))
        assert np.abs(copied).sum() > 0
        np.testing.assert_allclose(in_place, copied, rtol=1e-5, atol=1e-5)


@TF_ONLY
def test_study_policy_runs_randaugments_second_operation_on_its_images(monkeypatch):
    # The share each position is expected to be drawn by comes from the
    # chain's rates and choices: in study_policy RandAugment's second
    # operation (0.8 x 1/8 of the images, one position per round; its 7
    # pixel operations of 13, the geometry being in the resample) takes the
    # sub-batch path; light_policy's choice (half the images) does not.
    import tensorflow as tf

    from celltl.layers.fused import passes

    calls = []
    few_rows = passes.few_rows

    def spy(r, x, items, *args):
        calls.append(sum(item.share for item in items))
        return few_rows(r, x, items, *args)

    monkeypatch.setattr(passes, "few_rows", spy)
    x = tf.zeros((16, 32, 32, 3))
    for make, expected in [(celltl.study_policy, [0.1 * 7 / 13] * 2), (celltl.light_policy, [])]:
        calls.clear()
        policy = make(seed=0)
        tf.function(lambda t, policy=policy: policy(t, training=True))(x)
        np.testing.assert_allclose(calls, expected, rtol=1e-6)


@TF_ONLY
def test_tf_function_routing_equals_chain():
    import tensorflow as tf

    policy = FusedPipeline(_partial_augmix_layers())
    x = tf.constant(_smooth(12))

    fused, chain = _both_traced(policy, x)
    inner = np.abs(fused - chain)[:, 6:-6, 6:-6]
    assert inner.mean() < 2.0, inner.mean()


@TF_ONLY
def test_an_operation_every_image_takes_runs_once_on_the_batch():
    # An unknown layer every image takes (after AugMix, which only some
    # images drew) cuts the program: it runs once, on the whole batch, not
    # again on the images that took AugMix's split path.
    import tensorflow as tf

    sizes = []

    def invert(t):
        sizes.append(t.shape[0])
        return 255.0 - t

    layers = _partial_augmix_layers() + [keras.layers.Lambda(invert)]
    policy = FusedPipeline(layers)
    x = tf.constant(_smooth(12))

    fused, chain = _both_traced(policy, x)
    inner = np.abs(fused - chain)[:, 6:-6, 6:-6]
    assert inner.mean() < 2.0, inner.mean()
    assert sizes == [12, 12], sizes  # the fused path once, the chain once
    assert np.abs(fused - (255.0 - x.numpy())).mean() > 1.0


@TF_ONLY
def test_in_tf_data_with_routing():
    import tensorflow as tf

    policy = celltl.study_policy(acquisition=False, fused=True, seed=0)
    ds = tf.data.Dataset.from_tensor_slices(_smooth(16)).batch(8).map(
        lambda t: policy(t, training=True)
    )
    for batch in ds:
        assert batch.shape == (8, 32, 32, 3)


@pytest.mark.parametrize("make", ["light", "study"])
def test_mixed_precision(make):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        policy = celltl.light_policy(seed=0) if make == "light" else celltl.study_policy(seed=0)
        out = policy(_smooth(16))
        assert keras.backend.standardize_dtype(out.dtype) == "float16"
        values = np.asarray(out).astype("float32")
        assert values.min() >= 0 and values.max() <= 255
    finally:
        keras.config.set_dtype_policy(previous)


@TF_ONLY
def test_mixed_precision_in_tf_function():
    import tensorflow as tf

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        policy = celltl.study_policy(seed=0)
        out = tf.function(lambda t: policy(t, training=True))(tf.constant(_smooth(16)))
        assert out.dtype == tf.float16
        values = np.asarray(out).astype("float32")
        assert values.min() >= 0 and values.max() <= 255
        assert np.abs(values - _smooth(16)).mean() > 0.5
    finally:
        keras.config.set_dtype_policy(previous)


def test_inside_a_compiled_model_fit():
    # model.fit compiles the step: tf.function on TensorFlow, jax.jit on JAX.
    policy = celltl.light_policy(acquisition=False, seed=0)
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), policy, keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = _smooth(8, size=16)
    history = model.fit(x, np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@TF_ONLY
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_sparse_sharpen_blur_is_the_shifted_adds_blur(dtype):
    # The split path blurs the images that drew sharpness with one depthwise
    # convolution; it must be Keras RandomSharpness' zero-padded kernel, as
    # the shifted adds that the XLA passes use.
    import tensorflow as tf

    from celltl.layers.fused.filters import blur3, blur3_conv

    x = tf.constant(_smooth(3, size=17), dtype)
    policy = FusedPipeline([Cutout(seed=0)])
    want = np.asarray(blur3(x, policy.backend), "float32")
    got = np.asarray(blur3_conv(x), "float32")
    tolerance = {"float32": 1e-3, "float16": 0.3}[dtype]  # float16: 0.1 % of 255
    np.testing.assert_allclose(got, want, atol=tolerance)


def test_augmix_draws_every_step_its_own_magnitudes():
    # The operations draw for all steps at once and the draws are split into
    # the steps: each step gets width * batch rows of its own.
    x = _smooth(5)
    policy = FusedPipeline([AugMix(severity=0.5, depth=3, seed=1)])
    (adapter, draws, _, _), = policy.sample(x)[0]
    names = [op.layer.name for op in adapter.operations]
    k = next(i for i, n in enumerate(names) if "rotate" in n)
    angles = [np.asarray(step["ops"][k]["angle"]) for step in draws["steps"]]
    assert len(angles) == 3
    assert all(a.shape == (draws["width"] * 5,) for a in angles)
    assert not np.allclose(angles[0], angles[1]) and not np.allclose(angles[1], angles[2])
    assert len(np.unique(np.concatenate(angles))) == 3 * draws["width"] * 5


@pytest.mark.parametrize("geometry", [True, False])
def test_tiled_pass_equals_the_pass_over_the_copies(geometry):
    # AugMix's chains run on ``width`` copies of the batch: the fused pass
    # with ``tile`` reads each copy's rows from the batch itself (the
    # resample's ``rows``) and must equal the pass over the written copies,
    # with geometry (tiled resample) and without (the copies written).
    x = _smooth(4)
    layers = [RandomApply(ColorDegenerate(factor=(0.2, 1.0), seed=1), rate=0.7, seed=2),
              GridMask(seed=3)]
    if geometry:
        layers.insert(0, Shear(x_factor=0.3, y_factor=0.3, seed=4))
    policy = FusedPipeline(layers)
    copies = np.concatenate([x] * 3, axis=0)
    positions = policy.sample(copies)  # draws for every row of the copies
    from celltl.layers.fused.passes import fused_pass

    run = policy._runner()
    expected = np.asarray(fused_pass(run, keras.ops.convert_to_tensor(copies), positions))
    got = np.asarray(fused_pass(run, keras.ops.convert_to_tensor(x), positions, tile=3))
    assert got.shape == copies.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Rows differ per copy (their own draws), so a wrong row mapping shows.
    assert np.abs(expected[:4] - expected[4:8]).mean() > 1.0


@pytest.mark.parametrize("weights", [None, [5.0, 1.0, 1.0, 0.5]])
def test_round_share_bounds_the_share_that_draws_each_branch(weights):
    # Positions expected to be drawn by few images run on those images only:
    # the expected share per branch and round must not understate the draws
    # (exact, 1 / M, without weights).
    from celltl.layers.fused.sampling import round_share as _round_share

    layers = [ColorDegenerate(seed=i) for i in range(4)]
    choice = RandomChoice(layers, num=3, weights=weights, seed=0)
    order = np.asarray(choice._draw_order(20000))
    for position in range(3):
        for branch in range(4):
            drawn = float(np.mean(order[:, position] == branch))
            bound = _round_share(choice, branch, position)
            assert drawn <= bound + 0.015, (position, branch, drawn, bound)
            if weights is None:
                assert abs(drawn - bound) < 0.015
    assert _round_share(choice, 0, 0) == (0.25 if weights is None else 5.0 / 7.5)
