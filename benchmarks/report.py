"""Runs the side-by-side comparison and writes a markdown report.

Usage::

    python benchmarks/report.py                       # full run, writes benchmarks/RESULTS.md
    python benchmarks/report.py --quick --output /tmp/r.md   # a short smoke pass
    python benchmarks/report.py --only policy    # one section: layers, policy, training, memory, corruptions, compile

Everything is measured in this one process, on the same batches: per-layer
throughput of celltl against keras-cv and Keras core (``tf.function``,
``jit_compile=True`` where the layer supports XLA, and a ``tf.data``
pipeline), the study's whole policy (keras-cv pipeline vs
:func:`celltl.study_policy`), the augmentation share of a training step (in the model
and in ``tf.data``), the peak memory of one policy call (``memory.py``, each
case in its own process), and the class-balancing sampler against a plain
shuffled pipeline. Each figure is
the median of several timed rounds after warm-up; ratios (celltl / baseline)
are what the docs quote, absolute images/s only with the hardware printed
above the tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(os.cpu_count() or 1))
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    CASES,
    batch,
    blocking,
    compiled,
    corruption_cases,
    environment,
    have_keras_cv,
    identity,
    images_per_second,
    POLICY_CASES,
    tf_data_epoch,
)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def measure_layers(batch_sizes, modes, rounds):
    import tensorflow as tf

    rows = []
    for bs in batch_sizes:
        x = tf.constant(batch(bs))
        data = np.concatenate([batch(bs, seed=s) for s in range(4)])
        impls = {"identity": {"identity (no-op call)": identity}}
        impls.update(CASES)
        for layer, table in impls.items():
            for impl, factory in table.items():
                for mode in modes:
                    if impl == "keras-cv" and not have_keras_cv():
                        rows.append((bs, layer, impl, mode, None, "keras-cv not installed"))
                        continue
                    obj = factory()
                    if mode == "jit" and (
                        impl == "keras-cv" or not getattr(obj, "supports_jit", True)
                    ):
                        rows.append((bs, layer, impl, mode, None, "no XLA support"))
                        continue
                    try:
                        if mode == "tf.data":
                            fn, n = tf_data_epoch(obj, data, bs), len(data)
                        else:
                            fn, n = blocking(compiled(obj, jit=(mode == "jit")), x), bs
                        ips = images_per_second(fn, n, rounds=rounds)
                        rows.append((bs, layer, impl, mode, ips, ""))
                    except Exception as e:  # a baseline that fails is reported
                        rows.append((bs, layer, impl, mode, None, f"failed: {type(e).__name__}"))
                    log(f"batch {bs} {layer:16s} {impl:16s} {mode:12s} {rows[-1][4] or rows[-1][5]}")
    return rows


def measure_policy(bs, rounds, warmup=20):
    """Whole-policy rows: ``(label, images/s, first call s, note, group)``."""
    import tensorflow as tf

    x = tf.constant(batch(bs))
    out = []
    for impl, factory, group in POLICY_CASES:
        if "keras-cv" in impl and not have_keras_cv():
            out.append((impl, None, None, "keras-cv not installed", group))
            continue
        fn = blocking(compiled(factory()), x)
        start = time.perf_counter()
        fn()
        first = time.perf_counter() - start
        # XLA kernels compile once per sub-batch shape: warm up until steady.
        # A call's cost varies with its draws (how many images drew AugMix,
        # the sub-batch size they take): three times the rounds.
        ips = images_per_second(fn, bs, rounds=3 * rounds, warmup=warmup)
        out.append((impl, ips, first, "", group))
        log(f"policy {impl}: {ips:.0f} img/s (first call {first:.1f} s)")
    return out


def measure_training_overhead(bs, steps, backbone, warmup=50, rounds=3):
    """Step time of a classifier without augmentation, with it in the model
    (``build_classifier(augmentation=...)``) and with it in ``tf.data``
    (``ds.map``, as ``examples/blood_cells --augment-on data``):
    ``(label, median, mean seconds per step)`` over ``steps`` steps after
    ``warmup``, timed between the ends of consecutive batches in ``fit``.

    Every case is built and warmed up (one ``fit`` of ``warmup`` steps)
    first; the timed steps are then taken in ``rounds`` rounds, each a short
    ``fit`` of every case in turn, so that a slower or faster spell of the
    machine falls on all cases alike."""
    import keras
    import tensorflow as tf

    from celltl import build_classifier, light_policy, study_policy

    x = batch(bs, "uint8")
    y = np.arange(bs) % 8
    cases = [
        ("no augmentation", None, "model"),
        ("study_policy (per operation), in the model", lambda: study_policy(seed=0, fused=False), "model"),
        ("study_policy (fused), in the model", lambda: study_policy(seed=0), "model"),
        ("light_policy (fused), in the model", lambda: light_policy(seed=0), "model"),
        ("study_policy (fused), in tf.data", lambda: study_policy(seed=0), "data"),
        ("light_policy (fused), in tf.data", lambda: light_policy(seed=0), "data"),
    ]

    class StepClock(keras.callbacks.Callback):
        """The time at the end of every training batch."""

        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    def run(model, ds, n):
        clock = StepClock()
        model.fit(ds, steps_per_epoch=n, epochs=1, verbose=0, shuffle=False, callbacks=[clock])
        return np.diff(clock.ends)

    built = []
    for label, factory, where in cases:
        keras.utils.set_random_seed(0)
        aug = factory() if factory else None
        model = build_classifier(backbone, num_classes=8, input_shape=(96, 96, 3),
                                 augmentation=aug if where == "model" else None)
        model.compile(keras.optimizers.AdamW(1e-3), "sparse_categorical_crossentropy")
        ds = tf.data.Dataset.from_tensors((x, y)).repeat()
        if where == "data":
            ds = ds.map(lambda a, b, aug=aug: (aug(a, training=True), b),
                        num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.prefetch(tf.data.AUTOTUNE)
        # The first steps compile (the train step, then one XLA kernel per
        # sub-batch size the policy meets): the rows are the steps after.
        run(model, ds, warmup)
        built.append((label, model, ds))
    # Each round's fit starts its pipeline again: its first two step times
    # are left out.
    per_round = max(1, -(-steps // rounds))
    times = {label: [] for label, _, _ in built}
    for _ in range(rounds):
        for label, model, ds in built:
            times[label] += list(run(model, ds, per_round + 3)[2:])
    out = []
    for label, _, _ in built:
        t = np.asarray(times[label][: rounds * per_round])
        out.append((label, float(np.median(t)), float(np.mean(t))))
        log(f"training step {label}: median {out[-1][1] * 1000:.0f} ms, "
            f"mean {out[-1][2] * 1000:.0f} ms")
    return out


def measure_memory(bs):
    """Peak memory of one policy call at batch ``bs``, each case in a fresh
    process (``memory.py``): ``(label, peak bytes, batch bytes)``."""
    import memory

    from _common import MEMORY_CASES

    out = []
    for label, _ in MEMORY_CASES:
        if "keras-cv" in label and not have_keras_cv():
            continue
        r = memory.peak_memory(label, bs)
        out.append((label, r["peak_bytes"], r["batch_bytes"]))
        log(f"memory {label}: {r['peak_bytes'] / 2**20:.0f} MiB "
            f"({r['peak_bytes'] / r['batch_bytes']:.2f}x the batch)")
    return out


def measure_sampler(rounds):
    import bench_sampler as bs

    x, y = bs.make_data()
    out = []
    for kind in ("balanced", "plain"):
        it = iter(bs.build(kind, x, y))
        next(it)

        def run(it=it):
            for _ in range(bs.BATCHES_PER_ROUND):
                next(it)

        per_s = images_per_second(run, bs.BATCHES_PER_ROUND, rounds=rounds, warmup=1)
        out.append((kind, per_s))
        log(f"sampler {kind}: {per_s:.1f} batches/s")
    return out


def measure_corruptions(bs, modes, rounds):
    """images/s of every corruption layer (severity (1, 5)) and RandomCorruption."""
    import tensorflow as tf

    x = tf.constant(batch(bs))
    data = np.concatenate([batch(bs, seed=s) for s in range(4)])
    rows = []
    for layer, factory in corruption_cases().items():
        for mode in modes:
            if mode == "tf.data":
                fn, n = tf_data_epoch(factory(), data, bs), len(data)
            else:
                fn, n = blocking(compiled(factory()), x), bs
            # RandomCorruption compiles one XLA kernel per sub-batch shape: warm
            # up until steady, as for the policy.
            warmup = 20 if layer == "RandomCorruption" else 2
            rows.append((layer, mode, images_per_second(fn, n, rounds=rounds, warmup=warmup)))
            log(f"corruption {layer:16s} {mode:12s} {rows[-1][2]:.0f}")
    return rows


def measure_compile(quick=False):
    """XLA compilations and first-call times (``compile.py``, a fresh process
    each), and the import time of celltl (fresh interpreters, medians)."""
    import subprocess

    import compile as compile_counts

    rows = []
    cases = [("study_policy", 32, "graph"), ("light_policy", 32, "graph")]
    if not quick:
        cases += [("study_policy", 128, "graph"), ("light_policy", 128, "graph"),
                  ("study_policy", 32, "jit"), ("light_policy", 32, "jit"),
                  ("study_policy", 128, "jit"), ("convnext_tiny_step", 32, "jit")]
    for case, bs, mode in cases:
        # jit: one program, on the whole batch (slower per call on a CPU):
        # a few calls show that nothing more compiles.
        calls = (3 if case == "convnext_tiny_step" else
                 (5 if quick else 20) if mode == "jit" else (40 if quick else 300))
        r = compile_counts.count_compilations(case, bs, calls, mode)
        c = r["compiles"]
        last_new = max([i + 1 for i in range(1, len(c)) if c[i] > c[i - 1]], default=1)
        rows.append((case, bs, mode, calls, r["first_call_s"], c[0], c[-1], last_new,
                     r["median_call_s"]))
        log(f"compile {case} {bs} {mode}: first call {r['first_call_s']} s, "
            f"{c[0]} then {c[-1]} compilations, the last new at call {last_new}")

    def seconds(code, n=5):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    imports = []
    for label, code in [("python", "pass"), ("import celltl", "import celltl"),
                        ("import keras", "import keras"),
                        ("import keras, celltl (registers celltl's classes)",
                         "import keras, celltl")]:
        imports.append((label, seconds(code, 3 if quick else 5)))
        log(f"import: {label} {imports[-1][1]:.2f} s")
    return rows, imports


def render_compile(rows, imports):
    lines = ["", "## XLA compilations and first calls (96x96x3, CPU)", "",
             "Each case in a fresh process (`benchmarks/compile.py`), a fresh random "
             "batch each call; compilations counted from XLA's dump (one module per "
             "compilation). graph: `tf.function` (a CPU's or a multi-GPU run: the "
             "engine's kernels compile per call site); jit: `jit_compile=True` (one "
             "GPU: the whole step is one XLA program).", "",
             "| case | batch | mode | calls | first call (s) | compiled in call 1 | "
             "compiled in all | last new at call | median call (s) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for case, bs, mode, calls, first, c0, c1, last, med in rows:
        lines.append(f"| {case} | {bs} | {mode} | {calls} | {first:.1f} | {c0} | {c1} | "
                     f"{last} | {med:.4f} |")
    lines += ["", "Import time (fresh interpreter, median):", "",
              "| command | seconds |", "|---|---:|"]
    lines += [f"| `{label}` | {sec:.2f} |" for label, sec in imports]
    return "\n".join(lines) + "\n"


def fmt(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def render(env, layer_rows, policy_rows, train_rows, sampler_rows, command,
           corruption_rows=(), corruption_batch=128, memory_rows=(), memory_batch=512,
           train_batch=32, backbone="efficientnetv2_b0", train_warmup=50):
    lines = ["# celltl benchmark results", ""]
    lines += [f"Command: `{command}`", ""]
    lines += ["| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in env.items()]
    if layer_rows:  # absent when a single section is run (--only)
        lines += ["", "## Per layer (96x96x3 float32, images/s, median of rounds)", ""]
        lines += ["Ratio: celltl images/s divided by that row's images/s (same batch and "
                  "mode; for celltl rows, against the fastest baseline).", ""]
        lines += ["| batch | layer | implementation | mode | images/s | celltl / this |",
                  "|---:|---|---|---|---:|---:|"]
    index = {(r[0], r[1], r[2], r[3]): r[4] for r in layer_rows}
    for bs, layer, impl, mode, ips, note in layer_rows:
        ref = index.get((bs, layer, "celltl", mode))
        if impl == "celltl":
            base = [v for (b, l, i, m), v in index.items()
                    if b == bs and l == layer and m in (mode, "tf.function") and i not in ("celltl",) and v]
            ratio = f"{ips / max(base):.1f}x vs best baseline" if ips and base else ""
        elif layer == "identity":
            ratio = ""
        else:
            ratio = f"{ref / ips:.1f}x" if ref and ips else ""
        lines.append(
            f"| {bs} | {layer} | {impl} | {mode} | {fmt(ips) if ips else note} | {ratio} |"
        )
    if policy_rows:
        lines += ["", "## Whole policies (tf.function, images/s)", "",
                  "Ratio: images/s over the first row of the group (keras-cv's "
                  "flips and rotation in front of its pipeline of the study's operations, "
                  "as the study had and as study_policy has; light_policy per operation).", "",
                  "| implementation | images/s | first call (trace, s) | vs first of group |",
                  "|---|---:|---:|---:|"]
        firsts = {}
        for impl, ips, first, note, group in policy_rows:
            firsts.setdefault(group, ips)
            ref = firsts[group]
            ratio = f"{ips / ref:.1f}x" if ips and ref else ""
            lines.append(f"| {impl} | {fmt(ips) if ips else note} | {fmt(first, 1)} | {ratio} |")
    if train_rows:
        lines += ["", f"## Augmentation share of a training step ({backbone}, batch "
                  f"{train_batch}, fit)", "",
                  "Step times between the ends of consecutive batches in `fit`, after "
                  f"{train_warmup} warm-up steps per case (they compile the step and the policy's "
                  "kernels), taken in three rounds of every case in turn; "
                  "share: (step - step without augmentation) / step.", "",
                  "| augmentation | median step (ms) | mean step (ms) | share (median) "
                  "| share (mean) |", "|---|---:|---:|---:|---:|"]
        base_median, base_mean = train_rows[0][1], train_rows[0][2]
        for label, median, mean in train_rows:
            lines.append(f"| {label} | {median * 1000:,.0f} | {mean * 1000:,.0f} | "
                         f"{(median - base_median) / median:.0%} | "
                         f"{(mean - base_mean) / mean:.0%} |")
    if memory_rows:
        lines += ["", f"## Peak memory of one policy call (batch {memory_batch}, 96x96x3 "
                  "float32, tf.function)", "",
                  "Peak of TensorFlow's CPU allocator during the call above what it held "
                  "before (the input batch), each case in its own process "
                  "(`benchmarks/memory.py`).", "",
                  "| implementation | peak (MiB) | x the batch's size |", "|---|---:|---:|"]
        for label, peak, size in memory_rows:
            lines.append(f"| {label} | {peak / 2**20:,.0f} | {peak / size:.2f} |")
    if sampler_rows:
        lines += ["", "## Balanced sampler (batches of 128 x 96x96x3 uint8, batches/s)", "",
                  "| pipeline | batches/s |", "|---|---:|"]
        lines += [f"| {k} | {v:,.1f} |" for k, v in sampler_rows]
        lines += ["", "Peak memory: `pytest benchmarks/bench_sampler.py` records it in the "
                  "benchmark JSON (`extra_info`)."]
    if corruption_rows:
        modes = list(dict.fromkeys(m for _, m, _ in corruption_rows))
        table = {(layer, m): v for layer, m, v in corruption_rows}
        lines += ["", f"## Corruption layers (batch {corruption_batch}, 96x96x3 float32, "
                  "images/s)", "",
                  "Severity drawn per image from (1, 5); RandomCorruption draws one of "
                  "all the corruptions per image (rate 1).", "",
                  "| layer | " + " | ".join(modes) + " |",
                  "|---|" + "---:|" * len(modes)]
        for layer in dict.fromkeys(layer for layer, _, _ in corruption_rows):
            lines.append(f"| {layer} | " + " | ".join(fmt(table.get((layer, m)))
                                                      for m in modes) + " |")
    return "\n".join(lines) + "\n"


def _single(text, output):
    """One section (``--only``): printed, and written to ``output`` if given."""
    print(text)
    if output is not None:
        output.write_text(text)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 32 only, 2 rounds, no training row")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backbone", default="efficientnetv2_b0",
                        help="model for the training-overhead row")
    parser.add_argument("--output", type=Path, default=None,
                        help="defaults to benchmarks/RESULTS.md (full run)")
    parser.add_argument("--only", choices=["layers", "corruptions", "policy", "training",
                                           "memory", "compile"],
                        help="run only this section (printed, RESULTS.md untouched "
                             "unless --output is given)")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    batch_sizes = [32] if args.quick else [32, 128, 512]
    env = environment()
    log("environment:", env)
    corruption_bs = 32 if args.quick else 128
    if args.only == "layers":
        rows = measure_layers(batch_sizes, ["tf.function", "jit", "tf.data"], rounds)
        text = render(env, rows, [], [], [], "python benchmarks/report.py --only layers")
        return _single(text, args.output)
    if args.only == "policy":
        rows = measure_policy(32 if args.quick else 128, rounds, 2 if args.quick else 20)
        text = render(env, [], rows, [], [], "python benchmarks/report.py --only policy")
        return _single(text, args.output)
    if args.only == "training":
        warm = 5 if args.quick else 50
        rows = measure_training_overhead(32, 5 if args.quick else 30, args.backbone, warm)
        text = render(env, [], [], rows, [], "python benchmarks/report.py --only training",
                      backbone=args.backbone, train_warmup=warm)
        return _single(text, args.output)
    if args.only == "memory":
        memory_bs = 64 if args.quick else 512
        rows = measure_memory(memory_bs)
        text = render(env, [], [], [], [], "python benchmarks/report.py --only memory",
                      memory_rows=rows, memory_batch=memory_bs)
        return _single(text, args.output)
    if args.only == "compile":
        text = render(env, [], [], [], [], "python benchmarks/report.py --only compile")
        text += render_compile(*measure_compile(args.quick))
        return _single(text, args.output)
    if args.only == "corruptions":
        rows = measure_corruptions(corruption_bs, ["tf.function", "tf.data"], rounds)
        text = render(env, [], [], [], [], "python benchmarks/report.py --only corruptions",
                      rows, corruption_bs)
        return _single(text, args.output)
    layer_rows = measure_layers(batch_sizes, ["tf.function", "jit", "tf.data"], rounds)
    policy_rows = measure_policy(32 if args.quick else 128, rounds, 2 if args.quick else 20)
    train_rows = [] if args.quick else measure_training_overhead(32, 30, args.backbone)
    sampler_rows = measure_sampler(rounds)
    command = "python benchmarks/report.py" + (" --quick" if args.quick else "")
    corruption_rows = measure_corruptions(corruption_bs, ["tf.function", "tf.data"], rounds)
    memory_bs = 64 if args.quick else 512
    memory_rows = measure_memory(memory_bs)
    text = render(env, layer_rows, policy_rows, train_rows, sampler_rows, command,
                  corruption_rows, corruption_bs, memory_rows, memory_bs,
                  backbone=args.backbone)
    text += render_compile(*measure_compile(args.quick))
    output = args.output or HERE / "RESULTS.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
