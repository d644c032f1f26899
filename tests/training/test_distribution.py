"""Two workers of ``multi_worker_strategy`` train as one worker with the same global batch.

Each test starts real worker processes on this machine (``TF_CONFIG`` on
127.0.0.1, free ports), bounded in time and stopped by the test whatever
happens. Keras 3.15's ``fit`` fails under TensorFlow's own
``MultiWorkerMirroredStrategy`` (the control test shows it); celltl's
``multi_worker_strategy`` fixes its ``reduce``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute multi-worker training is TensorFlow-backend only",
)

TIMEOUT = 240

# One worker's program: a model with no randomness, uint8 images (as celltl
# keeps them), a global batch of 8 split across the workers, BatchNorm on the
# global batch's statistics (the saved values: Dense kernel, moving mean).
SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import tensorflow as tf
    if sys.argv[1] == "celltl":
        from celltl.training import multi_worker_strategy
        strategy = multi_worker_strategy()
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras
    x = (np.arange(64 * 4 * 4 * 3) % 251).reshape(64, 4, 4, 3).astype("uint8")
    y = (np.arange(64) % 3).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(8)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((4, 4, 3)), keras.layers.Rescaling(1 / 255.0),
            keras.layers.Flatten(), keras.layers.BatchNormalization(),
            keras.layers.Dense(3, activation="softmax")])
        if sys.argv[1] == "celltl":
            from celltl.training import synchronize_batchnorm
            assert synchronize_batchnorm(model) == 1
        model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    model.fit(data, steps_per_epoch=4, epochs=2, verbose=0)
    np.save(sys.argv[2], np.concatenate([model.layers[-1].kernel.numpy().ravel(),
                                         model.layers[-2].moving_mean.numpy()]))
    print("FINISHED", strategy.num_replicas_in_sync)
""")


def test_two_workers_give_one_workers_weights(tmp_path, run_workers):
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    results = run_workers(
        lambda i: [sys.executable, str(script), "celltl", str(tmp_path / f"w{i}.npy")])
    for code, out, err in results:
        assert code == 0 and "FINISHED 2" in out, err[-3000:]
    single = subprocess.run(
        [sys.executable, str(script), "celltl", str(tmp_path / "single.npy")],
        capture_output=True, text=True, timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "TF_CONFIG"})
    assert single.returncode == 0 and "FINISHED 1" in single.stdout, single.stderr[-3000:]
    w0, w1, one = (np.load(tmp_path / f"{n}.npy") for n in ("w0", "w1", "single"))
    np.testing.assert_array_equal(w0, w1)  # the workers stay in sync
    np.testing.assert_allclose(w0, one, atol=1e-4)  # and equal one worker
    assert np.abs(one).max() > 0.05  # it trained: the weights moved


def test_tensorflows_own_strategy_fails_in_keras_fit(tmp_path, run_workers):
    """The control: the bug ``multi_worker_strategy`` works around is still there.

    When a Keras release fixes it, this test fails: then ``multi_worker_strategy``
    can return TensorFlow's strategy unchanged.
    """
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    results = run_workers(
        lambda i: [sys.executable, str(script), "tensorflow", str(tmp_path / f"w{i}.npy")])
    assert all(code != 0 for code, _, _ in results)
    assert any("PerReplica" in err for _, _, err in results)


def test_one_local_worker_without_tf_config():
    from celltl.training import multi_worker_strategy

    if os.environ.get("TF_CONFIG"):
        pytest.skip("TF_CONFIG is set in this environment")
    code = ("from celltl.training import multi_worker_strategy; "
            "import tensorflow as tf; s = multi_worker_strategy(); "
            "assert isinstance(s, tf.distribute.MultiWorkerMirroredStrategy); "
            "print(s.num_replicas_in_sync)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.stdout.strip().endswith("1"), done.stderr[-2000:]
    assert callable(multi_worker_strategy)


def test_synchronize_batchnorm_rejects_a_non_layer():
    from celltl.training import synchronize_batchnorm

    with pytest.raises(ValueError, match="`model` must be a Keras model or layer. Received: model='x'"):
        synchronize_batchnorm("x")
