"""pytest-benchmark setup: pinned threads, versions and hardware in the JSON."""

from __future__ import annotations

import os

# Pin thread pools before TensorFlow starts (override with the env vars).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(os.cpu_count() or 1))
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import environment  # noqa: E402


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["celltl_environment"] = environment()


def pytest_report_header(config):
    env = environment()
    return "celltl benchmarks: " + ", ".join(f"{k}={v}" for k, v in env.items())
