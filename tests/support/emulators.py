"""The gcloud Pub/Sub and Firestore emulators (Java, from the google-cloud-cli packages), each started in its own
process group on a free loopback port and stopped with the whole group (the gcloud wrapper leaves a Java child)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.support.netutil import free_port

# The Java emulators take several seconds to start on a 2-core machine.
START_TIMEOUT_SECONDS = 90.0


def gcloud_available(component: str) -> bool:
    if shutil.which("gcloud") is None or shutil.which("java") is None:
        return False
    sdk = Path("/usr/lib/google-cloud-sdk/platform")
    return (sdk / component).exists()


class GcloudEmulator:
    def __init__(self, kind: str, workdir: Path) -> None:
        assert kind in ("pubsub", "firestore")
        self.kind = kind
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / f"{self.kind}.log").open("wb")
        args = (
            ["gcloud", "beta", "emulators", "pubsub", "start"]
            if self.kind == "pubsub"
            else ["gcloud", "emulators", "firestore", "start"]
        )
        args += [f"--host-port={self.host}"]
        if self.kind == "pubsub":
            (self.workdir / "data").mkdir(parents=True, exist_ok=True)
            args += [f"--data-dir={self.workdir / 'data'}"]
        env = dict(os.environ)
        env["CLOUDSDK_CORE_DISABLE_PROMPTS"] = "1"
        env["CLOUDSDK_CONFIG"] = str(self.workdir / "gcloud-config")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} emulator exited: {self.log_tail()}")
            try:
                resp = requests.get(f"http://{self.host}/", timeout=1)
                if resp.status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.kind} emulator did not start in {START_TIMEOUT_SECONDS}s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.workdir / f"{self.kind}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
