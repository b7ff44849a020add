"""A real image registry for tests: Debian's `docker-registry` (CNCF Distribution 2.8) on a
free loopback port, with filesystem storage in a folder of its own and token
authentication pointing at a running Fabriek (its `/api/v1/registry/token`, trusting the
certificate in Fabriek's state folder). Plain Python, no pytest: `ensure_registry()` installs
the package when missing and returns None, or a loud reason for `pytest.skip`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from fabriek.services.images.keys import CERT_FILE, registry_dir
from fabriek.services.images.tokens import ISSUER, SERVICE
from tests.container_images import ensure_podman
from tests.setup_lock import machine_setup
from tests.slurm_install import _apt_install

PROGRAM = "/usr/bin/docker-registry"

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {address}
  secret: fabriek-test-registry
auth:
  token:
    realm: {realm}
    service: {service}
    issuer: {issuer}
    rootcertbundle: {certificate}
"""


def ensure_registry() -> str | None:
    """None when the registry and podman are here (installed from Debian when missing),
    else why not."""
    if (reason := ensure_podman()) is not None:
        return reason
    with machine_setup():
        if shutil.which(PROGRAM) is None:
            failed = _apt_install("docker-registry")
            if failed:
                return f"could not install docker-registry: {failed}"
    return None


@dataclass
class Registry:
    """A running registry: its address (host:port, as image names use it)."""

    address: str
    config: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (again) and wait until /v2/ answers (401: it asks for a token)."""
        log = (self.config.parent / "registry.log").open("ab")
        self.process = subprocess.Popen(
            [PROGRAM, "serve", str(self.config)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://{self.address}/v2/", timeout=1).status_code == 401:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the registry did not start: see {log.name}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it (a registry that is down, for tests of an outage)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextmanager
def running_registry(
    address: str, fabriek_url: str, state_dir: Path, folder: Path
) -> Iterator[Registry]:
    """The registry at `address` (127.0.0.1:PORT), trusting the Fabriek at `fabriek_url`
    whose state folder is `state_dir` (where its token certificate is); stopped after."""
    certificate = registry_dir(state_dir) / CERT_FILE
    if not certificate.exists():
        raise RuntimeError(f"{certificate} is missing: start Fabriek with FABRIEK_REGISTRY set")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yml"
    config.write_text(
        CONFIG.format(
            storage=folder / "storage",
            address=address,
            service=SERVICE,
            issuer=ISSUER,
            realm=f"{fabriek_url}/api/v1/registry/token",
            certificate=certificate,
        )
    )
    registry = Registry(address, config)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()
