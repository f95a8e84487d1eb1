"""Start or join Ray: an embedded local Ray bound to loopback, or a cluster via `address` / $RAY_ADDRESS."""

from __future__ import annotations

import contextlib
import logging
import os

import ray

EMBEDDED_OBJECT_STORE_BYTES = 1 << 30  # documents travel through files, not the object store; 1 GiB is plenty


@contextlib.contextmanager
def _loopback_only():
    """While the embedded node starts, keep Ray from swapping 127.0.0.1 for the machine's interface address.

    Ray 2.60 treats a Linux node as cluster-capable and resolves a loopback node IP to the interface address, so
    its GCS, raylet and workers listen on every interface. With cluster mode off for the start (the flag it
    reads on macOS/Windows, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`), every service binds 127.0.0.1. The flag is
    restored at once: after the start Ray reads the node's address from the running node, not the flag.
    """
    from ray._private import ray_constants

    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):  # another Ray release: bind as it decides
        yield
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def init_ray(address: str | None = None, num_cpus: int | None = None) -> dict:
    """Idempotent. Embedded unless an address is given (argument or $RAY_ADDRESS): a local cluster started
    with `ray start`, or the stale `/tmp/ray/ray_current_cluster` a killed one leaves, is never joined by accident.

    Returns a small description: {"mode": "embedded"|"cluster", "address": ..., "cpus": ...}."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        common = dict(ignore_reinit_error=True, logging_level=logging.WARNING, log_to_driver=True)
        if address:
            ray.init(address=address, **common)
        else:
            os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
            with _loopback_only():
                ray.init(
                    address="local",  # a new embedded Ray even when `ray start` (or a stale record of one) is here
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
