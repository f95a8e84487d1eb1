"""Start or join Ray: an embedded local Ray bound to loopback, or a cluster via `address` / $RAY_ADDRESS."""

from __future__ import annotations

import logging
import os

import ray

EMBEDDED_OBJECT_STORE_BYTES = 1 << 30  # documents travel through files, not the object store; 1 GiB is plenty


def init_ray(address: str | None = None, num_cpus: int | None = None) -> dict:
    """Idempotent. Returns a small description: {"mode": "embedded"|"cluster", "address": ..., "cpus": ...}."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        common = dict(ignore_reinit_error=True, logging_level=logging.WARNING, log_to_driver=True)
        if address:
            ray.init(address=address, **common)
        else:
            os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                object_store_memory=EMBEDDED_OBJECT_STORE_BYTES,
                _node_ip_address="127.0.0.1",
                **common,
            )
    ctx = ray.get_runtime_context()
    return {
        "mode": "cluster" if address else "embedded",
        "address": address or "embedded",
        "cpus": int(ray.cluster_resources().get("CPU", 0)),
        "job_id": ctx.get_job_id(),
    }
