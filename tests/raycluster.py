"""Real Ray clusters on loopback for tests: `ray start --block` processes in their own process groups.

Never `ray stop` here: it would kill every Ray on the machine, the test session's embedded one included. Each node
is stopped by signalling its own process group. Head on 127.0.0.2, extra nodes on 127.0.0.3 (ENVIRONMENT.md: Ray
swaps 127.0.0.1 for the machine's interface address).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env() -> dict:
    env = dict(os.environ)
    env["RAY_AUTH_MODE"] = "disabled"
    env.pop("RAY_ADDRESS", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


class Node:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([str(BIN / "ray"), "start", "--block", *args], env=ray_env(),
                                     stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class LoopbackCluster:
    """A head node (and optional workers) started as separate processes; use as a context manager."""

    def __init__(self, tmp: Path, head_cpus: int = 1) -> None:
        self.tmp = tmp  # logs
        tmp.mkdir(parents=True, exist_ok=True)
        self.session_root = Path(tempfile.mkdtemp(prefix="tmray-", dir="/tmp"))  # AF_UNIX paths: ≤ 107 bytes
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.nodes: list[Node] = []
        self.head_cpus = head_cpus

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.2:{self.dashboard_port}"

    @property
    def gcs(self) -> str:
        return f"127.0.0.2:{self.gcs_port}"

    def _common(self, ip: str, name: str) -> list[str]:
        lo = free_port()
        return ["--node-ip-address", ip, "--temp-dir", str(self.session_root / name),
                "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()),
                "--min-worker-port", str(lo), "--max-worker-port", str(lo + 60)]

    def start_head(self) -> None:
        args = ["--head", "--port", str(self.gcs_port), "--dashboard-host", "127.0.0.2", "--dashboard-port",
                str(self.dashboard_port), "--num-cpus", str(self.head_cpus), "--ray-client-server-port",
                str(free_port()), *self._common("127.0.0.2", "head")]
        self.nodes.append(Node(args, self.tmp / "head.log"))
        self.wait_for_dashboard()

    def add_node(self, num_cpus: int = 1) -> Node:
        name = f"node{len(self.nodes)}"
        node = Node(["--address", self.gcs, "--num-cpus", str(num_cpus), *self._common("127.0.0.3", name)],
                    self.tmp / f"{name}.log")
        self.nodes.append(node)
        return node

    def wait_for_dashboard(self, timeout: float = 90) -> None:
        import urllib.request

        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{self.dashboard}/api/version", timeout=2)
                return
            except OSError:
                if self.nodes[0].proc.poll() is not None:
                    break
                time.sleep(0.5)
        raise RuntimeError(f"Ray head did not come up; log:\n{self.nodes[0].log.read_text()[-3000:]}")

    def submit(self, entrypoint: str, working_dir: Path, timeout: float = 300,
               no_wait: bool = False) -> subprocess.CompletedProcess:
        cmd = [str(BIN / "ray"), "job", "submit", "--address", self.dashboard, "--working-dir", str(working_dir),
               *(["--no-wait"] if no_wait else []), "--", *entrypoint.split()]
        return subprocess.run(cmd, env=ray_env(), capture_output=True, text=True, timeout=timeout)

    def submit_no_wait(self, entrypoint: str, working_dir: Path) -> str:
        proc = self.submit(entrypoint, working_dir, no_wait=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout + proc.stderr)
        import re

        return re.findall(r"raysubmit_\w+", proc.stdout + proc.stderr)[0]

    def _client(self):
        os.environ["RAY_AUTH_MODE"] = "disabled"  # the client side of RAY_AUTH_MODE (ENVIRONMENT.md)
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.dashboard)

    def job_status(self, job_id: str) -> str:
        return str(self._client().get_job_status(job_id).value)

    def job_logs(self, job_id: str) -> str:
        return self._client().get_job_logs(job_id)

    def wait_job(self, job_id: str, timeout: float = 600) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.job_status(job_id)
            if state in ("SUCCEEDED", "FAILED", "STOPPED"):
                return state
            time.sleep(2)
        return "TIMEOUT"

    def __enter__(self) -> LoopbackCluster:
        self.start_head()
        return self

    def __exit__(self, *exc) -> None:
        for node in reversed(self.nodes):
            node.kill(signal.SIGTERM)
        shutil.rmtree(self.session_root, ignore_errors=True)
