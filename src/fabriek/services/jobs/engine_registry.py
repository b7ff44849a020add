"""Which engine runs each site's jobs: bound by a TOML file, the embedded default is `local`.

```toml
[sites.amsterdam]
engine = "slurm"
slurm_conf = "/etc/slurm-amsterdam/slurm.conf"

[sites.groningen]
engine = "local"
virtual_gpus = 8

[sites.eindhoven]          # its own administrative domain: only its REST API is reached
engine = "slurmrestd"
url = "https://slurm.eindhoven.example:6820"
jwt_key_file = "/etc/fabriek/sites/eindhoven-jwt.key"
operator = "slurm"
log_dir = "/shared/fabriek-output"
```
A site the file does not name runs on a `local` engine: processes on this machine with as
many virtual GPUs as the site declares, so the whole factory can be tried on one machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from fabriek.domain.accounts import DEFAULT_ID_BASE
from fabriek.domain.config_files import FileTable, read_table
from fabriek.engines.base import Engine
from fabriek.engines.local import LocalEngine
from fabriek.engines.slurm import SlurmEngine
from fabriek.engines.slurmrestd import JwtSigner, SlurmRestEngine
from fabriek.services.config_files import load_config_file


class EngineConfig(FileTable):
    """How one site's engine is built: a `[sites.NAME]` table of the sites file."""

    engine: Literal["local", "slurm", "slurmrestd"] = "local"
    # slurm: the cluster's configuration, for a control plane that is one of its clients.
    slurm_conf: str | None = None
    # slurmrestd: the site's REST API, the key its tokens are signed with (the site's
    # AuthAltParameters=jwt_key=) and the site account that watches and cancels all jobs.
    # slurm and slurmrestd: output storage the site's nodes and the control plane share.
    url: str | None = None
    jwt_key_file: str | None = None
    operator: str = "slurm"
    log_dir: str | None = None
    partition: str | None = None
    virtual_gpus: int | None = Field(default=None, ge=0)
    # GPUs' worth of jobs beyond the site's own that may wait in its cluster's queue, so
    # that Slurm starts the next job the moment one ends. None: as many as the site has.
    queue_depth: int | None = Field(default=None, ge=0)
    # Give a local site's virtual GPUs an energy counter of this constant power: an NVML
    # test double for machines without GPUs (tests, demos). Never set on real hardware.
    energy_test_double_watts: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> EngineConfig:
        needs = {"slurm": ["slurm_conf"], "slurmrestd": ["url", "jwt_key_file", "log_dir"]}
        for key in needs.get(self.engine, []):
            if not getattr(self, key):
                raise ValueError(f"engine {self.engine} needs {key}")
        return self


class SitesFile(FileTable):
    """The sites file: one table per site whose engine is not the embedded default."""

    sites: dict[str, EngineConfig] = Field(default_factory=dict)


def load_sites_file(path: Path) -> dict[str, EngineConfig]:
    """Read the site-to-engine bindings; a bad file is a clear one-line error."""
    return load_config_file(path, "", "sites", lambda data: read_table(SitesFile, data).sites)


class EngineRegistry:
    """One engine per site, built on first use and kept."""

    def __init__(
        self,
        state_dir: Path,
        configs: dict[str, EngineConfig] | None = None,
        default_gpus: int | None = None,
        tag_prefix: str = "fabriek",
        private_paths: Sequence[Path] = (),
        id_base: int = DEFAULT_ID_BASE,
    ) -> None:
        """`private_paths` are what no job may see besides the state folder (the database,
        the keys, the dataset store); local jobs' UIDs and GIDs are numbered from
        `id_base`."""
        self.state_dir = Path(state_dir)
        self.private_paths = (self.state_dir, *private_paths)
        self.id_base = id_base
        self.tag_prefix = tag_prefix
        self.configs = configs or {}
        self.default_gpus = default_gpus
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def kind(self, site: str) -> str:
        return self.configs.get(site, EngineConfig()).engine

    def queue_depth(self, site: str, site_gpus: int) -> int:
        """Extra GPUs' worth of jobs the site's own queue may hold (none for `local`)."""
        config = self.configs.get(site, EngineConfig())
        if config.engine == "local":
            return 0
        return site_gpus if config.queue_depth is None else config.queue_depth

    def engine(self, site: str, site_gpus: int) -> Engine:
        """The site's engine; `site_gpus` sizes a local engine's virtual GPUs."""
        with self._lock:
            if site not in self._engines:
                self._engines[site] = self._build(site, site_gpus)
            return self._engines[site]

    def _output(self, site: str) -> Path:
        """The default output folder of a Slurm site's jobs: only for a cluster whose nodes
        see the control plane's state folder, and only when its parents let users in."""
        return _shared_output(self.state_dir / "slurm-output" / site)

    def _build(self, site: str, site_gpus: int) -> Engine:
        config = self.configs.get(site, EngineConfig())
        builders: dict[str, Callable[[], Engine]] = {
            "local": lambda: LocalEngine(
                site,
                # Per installation: a recreated store never adopts an old store's job dirs.
                self.state_dir / "engines" / self.tag_prefix / site,
                virtual_gpus=config.virtual_gpus or self.default_gpus or site_gpus,
                gpu_type=None,
                energy_test_double_watts=config.energy_test_double_watts,
                private_paths=self.private_paths,
                id_base=self.id_base,
            ),
            "slurm": lambda: SlurmEngine(
                site,
                env={"SLURM_CONF": config.slurm_conf or ""},
                log_dir=Path(config.log_dir) if config.log_dir else self._output(site),
                tag_prefix=self.tag_prefix,
            ),
            "slurmrestd": lambda: SlurmRestEngine(
                site,
                config.url or "",
                JwtSigner(Path(config.jwt_key_file or "")),
                Path(config.log_dir or ""),
                operator=config.operator,
                tag_prefix=self.tag_prefix,
                partition=config.partition,
            ),
        }
        return builders[config.engine]()


def _shared_output(path: Path) -> Path:
    """A folder every job user may write in and none may touch another's files in."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o1777)
    return path


def tag_prefix(installation_id: str) -> str:
    """The tag engines put on this installation's jobs: `fbk-` and 8 hex digits of its id."""
    return f"fbk-{installation_id[:8]}"
