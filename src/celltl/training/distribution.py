"""``multi_worker_strategy``: ``MultiWorkerMirroredStrategy`` that Keras 3's ``fit`` can use.

Training on several machines (or several processes of one) is TensorFlow's
``tf.distribute.MultiWorkerMirroredStrategy``: every worker runs the same
script, with ``TF_CONFIG`` naming the cluster and its own task, and the
gradients are all-reduced across workers after every step. With Keras 3.15
and TensorFlow 2.21, ``model.fit`` under that strategy fails before the first
step, for any model (measured with a one-layer model on two workers):

- ``fit`` reduces a first batch across workers to learn its shapes
  (``strategy.reduce("MEAN", (x, y))``): the strategy's ``reduce`` takes one
  value, not the ``(x, y)`` structure ("Attempt to convert a value
  (PerReplica...) to a Tensor"), and the collective behind it takes no
  ``uint8`` (images as celltl keeps them);
- ``fit`` then averages the per-replica logs (scalars) with ``axis=0``,
  which a scalar has not ("Invalid reduction dimension 0").

The strategy returned here differs from TensorFlow's only in ``reduce``: it
maps over structures, reduces other dtypes as ``float32`` (cast back), and
reduces scalars across replicas without an axis. Training is then the
synchronous data-parallel step it should be: with the same global batch
and no randomness in the model, two workers give one worker's weights
(``tests/training/test_distribution.py``).

Launching: start the same command on every machine with ``TF_CONFIG`` set,
for example on two machines::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' python train.py ...
    # and on host2 the same with "index": 1

Worker 0 is the chief (it alone should write outputs); the batch size given
to ``fit`` (the dataset's) is the global batch, split across the workers.

BatchNorm: under any multi-replica strategy, each replica normalises by its
own part of the batch and updates its own moving statistics, so the
replicas' models drift apart, and a prediction depends on the replica that
made it (measured: the two workers' halves of a test set scored with
different statistics). :func:`synchronize_batchnorm` makes every
``BatchNormalization`` layer use the statistics of the global batch
(``synchronized=True``, an all-reduce per layer and step): the replicas then
stay equal, and equal to one replica with the global batch.
"""

from __future__ import annotations

__all__ = ["multi_worker_strategy", "synchronize_batchnorm"]

#: Dtypes the collective all-reduce accepts (``CollectiveReduceV2``).
_COLLECTIVE_DTYPES = ("bfloat16", "float16", "float32", "float64", "int32", "int64")


def multi_worker_strategy(cluster_resolver=None, communication_options=None):
    """A ``tf.distribute.MultiWorkerMirroredStrategy`` whose ``reduce`` Keras 3's ``fit`` can use.

    Call it at the start of the program, before any other TensorFlow
    operation (as for TensorFlow's own), then build and compile the model
    under ``strategy.scope()`` and call ``fit`` as usual.

    Args:
        cluster_resolver: Passed to ``MultiWorkerMirroredStrategy``
            (``None``: from ``TF_CONFIG``). Defaults to ``None``.
        communication_options: Passed to ``MultiWorkerMirroredStrategy``
            (a ``tf.distribute.experimental.CommunicationOptions``).
            Defaults to ``None``.

    Returns:
        The strategy, an instance of ``tf.distribute.MultiWorkerMirroredStrategy``.

    Example:

    >>> from celltl.training import multi_worker_strategy
    >>> strategy = multi_worker_strategy()  # no TF_CONFIG: one local worker
    >>> strategy.num_replicas_in_sync
    1
    """
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """TensorFlow's strategy with a ``reduce`` that Keras 3's ``fit`` can use."""

        def reduce(self, reduce_op, value, axis):
            def one(v):
                if isinstance(v, tf.distribute.DistributedValues):
                    first = self.experimental_local_results(v)[0]
                else:
                    first = tf.convert_to_tensor(v)
                one_axis = None if axis is not None and first.shape.rank == 0 else axis
                if first.dtype.name in _COLLECTIVE_DTYPES:
                    return super(MultiWorkerMirroredStrategy, self).reduce(
                        reduce_op, v, one_axis)
                cast = self.run(tf.cast, args=(v, tf.float32))
                out = super(MultiWorkerMirroredStrategy, self).reduce(
                    reduce_op, cast, one_axis)
                return tf.cast(out, first.dtype)

            return tf.nest.map_structure(one, value)

    return MultiWorkerMirroredStrategy(
        cluster_resolver=cluster_resolver, communication_options=communication_options)


def synchronize_batchnorm(model):
    """Makes every ``BatchNormalization`` of ``model`` use the global batch's statistics.

    Sets ``synchronized=True`` (saved with the model) on each Keras
    ``BatchNormalization`` layer, nested ones included. Under a
    multi-replica ``tf.distribute`` strategy, the batch mean and variance
    are then all-reduced across replicas, so every replica normalises and
    updates its moving statistics alike; outside one, the layer computes
    the same statistics as before. Call it before the first ``fit``
    (TensorFlow backend only).

    Args:
        model: A Keras model or layer.

    Returns:
        The number of ``BatchNormalization`` layers set.

    Raises:
        ValueError: ``model`` is not a Keras layer, or the backend is not
            TensorFlow.

    Example:

    >>> import keras
    >>> from celltl.training import synchronize_batchnorm
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    >>> synchronize_batchnorm(model)
    1
    """
    import keras

    from celltl._compat import flatten_layers

    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            f"`model` must be a Keras model or layer. Received: model={model!r}"
        )
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "synchronize_batchnorm needs the TensorFlow backend (tf.distribute). "
            f"Received: backend={keras.backend.backend()!r}"
        )
    count = 0
    for layer in flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count
