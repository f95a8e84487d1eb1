"""The embedded Ray listens on loopback only: a local run opens no port to the network."""

from __future__ import annotations

from pathlib import Path

LOOPBACK_V4 = "0100007F"  # 127.0.0.1 in /proc/net/tcp's little-endian hex
LOOPBACK_V6 = ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")  # ::1, ::ffff:127.0.0.1
LISTEN = "0A"


def listening_addresses(port: int) -> list[str]:
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == LISTEN and int(hex_port, 16) == port:
                found.append(addr)
    return found


def test_embedded_ray_binds_loopback_only(ray_local):
    import ray

    host, port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
    assert host == "127.0.0.1"
    addrs = listening_addresses(int(port))
    assert addrs, "the GCS port is not listening?"
    assert all(a == LOOPBACK_V4 or a in LOOPBACK_V6 for a in addrs), addrs
