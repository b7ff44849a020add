"""Which engine runs each site's jobs: bound by a TOML file, the embedded default is `local`.

```toml
[sites.amsterdam]
engine = "slurm"
slurm_conf = "/etc/slurm-amsterdam/slurm.conf"

[sites.groningen]
engine = "local"
virtual_gpus = 8
container_runtime = "podman"      # jobs with an image run in it; none: such jobs are refused
container_cdi = false             # hand GPUs to containers as NVIDIA CDI devices
# What this machine's podman needs, before `run` and before the image:
container_global_options = ["--runtime", "runc", "--cgroup-manager=cgroupfs"]
container_run_options = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

[sites.delft]              # Slurm, with rootless podman started by each job's own user
engine = "slurm"
slurm_conf = "/etc/slurm-delft/slurm.conf"
container_runtime = "podman"          # or "apptainer", or "pyxis" (Enroot)
container_global_options = ["--root", "/scratch/podman-${USER}/storage"]
container_environment = { XDG_RUNTIME_DIR = "/scratch/podman-${USER}/run" }
dataset_staging = "/shared/fabriek/staging"   # jobs' datasets, seen by every node

[sites.eindhoven]          # its own administrative domain: only its REST API is reached
engine = "slurmrestd"
url = "https://slurm.eindhoven.example:6820"
jwt_key_file = "/etc/fabriek/sites/eindhoven-jwt.key"
operator = "slurm"
log_dir = "/shared/fabriek-output"

[sites.juelich-partner]    # another Fabriek: jobs run there on the allocation it granted
engine = "partner"
url = "https://fabriek.partner.example"
token_file = "/etc/fabriek/partners/juelich.token"
partner_project = "nl-factory"            # the allocation's project at the partner
factory = "nl-factory"                    # this factory's name in the partner's file
partner = "juelich"                       # the partner's own name (the assertion's audience)
signing_key_file = "/etc/fabriek/partners/signing-key.pem"
country = "de"
projects = ["dutch-llm"]                  # the projects whose jobs may cross to it
```
A site the file does not name runs on a `local` engine: processes on this machine with as
many virtual GPUs as the site declares, so the whole factory can be tried on one machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from fabriek.domain.accounts import DEFAULT_ID_BASE
from fabriek.domain.config_files import FileTable, read_table
from fabriek.domain.containers import ContainerRuntime, ContainerSupport
from fabriek.domain.dataset_staging import SiteStaging, StagingConfigError, site_staging
from fabriek.domain.partners import PartnerTerms
from fabriek.engines.base import Engine
from fabriek.engines.local import LocalEngine
from fabriek.engines.partner import AssertionSigner, PartnerEngine
from fabriek.engines.slurm import SlurmEngine
from fabriek.engines.slurm_web import WebPorts
from fabriek.engines.slurmrestd import JwtSigner, SlurmRestEngine
from fabriek.services.config_files import load_config_file


class EngineConfig(FileTable):
    """How one site's engine is built: a `[sites.NAME]` table of the sites file."""

    engine: Literal["local", "slurm", "slurmrestd", "partner"] = "local"
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
    # Containers (docs/workloads.md): the runtime a site runs jobs' images with (local:
    # podman; slurm and slurmrestd: podman rootless, apptainer or pyxis), whether GPUs go to
    # containers as NVIDIA CDI devices, and the options its machines need. None: jobs with
    # an image are refused before they are queued.
    container_runtime: Literal["podman", "apptainer", "pyxis"] | None = None
    container_cdi: bool = False
    container_global_options: list[str] = Field(default_factory=list)
    container_run_options: list[str] = Field(default_factory=list)
    container_environment: dict[str, str] = Field(default_factory=dict)
    # The site's own Jupyter program, for notebooks run outside an image (default: `jupyter`
    # on the job's PATH).
    jupyter: str | None = Field(default=None, min_length=1)
    # Datasets (docs/workloads.md): where a Slurm site's jobs find theirs, a folder on its
    # shared file system the compute nodes see; where the control plane sees that folder,
    # if elsewhere. None: jobs that read datasets are refused before they are queued.
    dataset_staging: str | None = None
    dataset_staging_local: str | None = None
    # slurm and slurmrestd web apps (engines/slurm_web.py): the ports a job's app may take on
    # its node (outside the nodes' ephemeral range), the address it listens on, and node
    # name -> the address the control plane reaches it at, where that is not its NodeAddr.
    web_ports: list[int] = Field(default_factory=lambda: [20000, 29999], min_length=2, max_length=2)
    # partner (docs/federation.md, "Partner factories"): the partner's API token of the
    # allocation it granted, that allocation's project there, this factory's name as the
    # partner's partners file knows it, the partner's own name, this factory's Ed25519
    # signing key (PEM), the partner's country (ISO 3166 code: the residency rule reads
    # it) and the projects whose jobs may cross to it (none unless listed).
    token_file: str | None = None
    partner_project: str | None = None
    factory: str | None = None
    partner: str | None = None
    signing_key_file: str | None = None
    country: str | None = Field(default=None, pattern=r"^[a-z]{2}$")
    projects: list[str] = Field(default_factory=list)
    web_listen: str = "0.0.0.0"
    node_addresses: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> EngineConfig:
        needs = {
            "slurm": ["slurm_conf"],
            "slurmrestd": ["url", "jwt_key_file", "log_dir"],
            "partner": ["url", "token_file", "partner_project", "factory", "partner",
                        "signing_key_file", "country"],
        }  # fmt: skip
        for key in needs.get(self.engine, []):
            if not getattr(self, key):
                raise ValueError(f"engine {self.engine} needs {key}")
        if self.engine == "local" and self.container_runtime not in (None, "podman"):
            raise ValueError("the local engine runs containers with podman only")
        if self.engine == "local" and (self.dataset_staging or self.dataset_staging_local):
            raise ValueError("the local engine stages datasets itself: no dataset_staging")
        if self.engine == "partner" and (self.container_runtime or self.dataset_staging):
            raise ValueError("a partner factory runs no images or datasets of this factory")
        if self.engine != "partner" and (self.projects or self.country):
            raise ValueError("projects and country are keys of a partner site")
        if self.country == "eu":
            raise ValueError("country eu is no country: give the partner's ISO 3166 code")
        if self.dataset_staging_local and not self.dataset_staging:
            raise ValueError("dataset_staging_local needs dataset_staging")
        if self.dataset_staging:
            try:  # the installation's tag does not matter here, only the paths
                site_staging("", self.dataset_staging, "check", self.dataset_staging_local)
            except StagingConfigError as exc:
                raise ValueError(str(exc)) from None
        self.web()  # a bad port range or address is the file's error, not a job's
        return self

    def web(self) -> WebPorts:
        """Where this Slurm site's jobs' web apps listen."""
        return WebPorts(self.web_ports[0], self.web_ports[1], self.web_listen)

    def stages_datasets(self) -> bool:
        """Whether jobs at this site can be handed their datasets."""
        return self.engine == "local" or self.dataset_staging is not None

    def partner_terms(self, site: str) -> PartnerTerms | None:
        """What the scheduler must know of a partner site (None: not a partner)."""
        if self.engine != "partner" or self.country is None:
            return None
        return PartnerTerms(site, self.country, frozenset(self.projects))

    def containers(self) -> ContainerSupport | None:
        """How this site runs jobs in images, or None where it runs none."""
        if self.container_runtime is None:
            return None
        return ContainerSupport(
            ContainerRuntime(self.container_runtime),
            self.container_cdi,
            tuple(self.container_global_options),
            tuple(self.container_run_options),
            tuple(self.container_environment.items()),
        )


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

    def jupyter(self, site: str) -> str | None:
        """The Jupyter program the site's sites-file table names, if any."""
        return self.configs.get(site, EngineConfig()).jupyter

    def dataset_staging(self, site: str) -> SiteStaging | None:
        """Where the site's jobs find their datasets, when its sites-file table declares a
        staging folder (a `local` site's jobs get theirs from the dispatcher's own)."""
        config = self.configs.get(site, EngineConfig())
        if config.dataset_staging is None:
            return None
        return site_staging(
            site, config.dataset_staging, self.tag_prefix, config.dataset_staging_local
        )

    def dataset_stagings(self) -> list[SiteStaging]:
        """Every site's staging folder, where declared."""
        return [s for s in map(self.dataset_staging, sorted(self.configs)) if s is not None]

    def queue_depth(self, site: str, site_gpus: int) -> int:
        """Extra GPUs' worth of jobs the site's own queue may hold (none for `local`)."""
        config = self.configs.get(site, EngineConfig())
        if config.engine in ("local", "partner"):
            return 0
        return site_gpus if config.queue_depth is None else config.queue_depth

    def engine(self, site: str, site_gpus: int) -> Engine:
        """The site's engine; `site_gpus` sizes a local engine's virtual GPUs."""
        with self._lock:
            if site not in self._engines:
                self._engines[site] = self._build(site, site_gpus)
            return self._engines[site]

    def forget_remote(self) -> None:
        """Drop the engines of every site that is not `local`, to be built afresh at next
        use: what they remembered of their clusters (the jobs submitted by this server)
        is stale once another server has dispatched meanwhile."""
        with self._lock:
            for site in [s for s in self._engines if self.kind(s) != "local"]:
                del self._engines[site]

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
                containers=config.containers(),
            ),
            "slurm": lambda: SlurmEngine(
                site,
                env={"SLURM_CONF": config.slurm_conf or ""},
                log_dir=Path(config.log_dir) if config.log_dir else self._output(site),
                tag_prefix=self.tag_prefix,
                containers=config.containers(),
                web_ports=config.web(),
                node_addresses=config.node_addresses,
            ),
            "slurmrestd": lambda: SlurmRestEngine(
                site,
                config.url or "",
                JwtSigner(Path(config.jwt_key_file or "")),
                Path(config.log_dir or ""),
                operator=config.operator,
                tag_prefix=self.tag_prefix,
                partition=config.partition,
                containers=config.containers(),
                web_ports=config.web(),
                node_addresses=config.node_addresses,
            ),
            "partner": lambda: PartnerEngine(
                site,
                config.url or "",
                Path(config.token_file or ""),
                config.partner_project or "",
                config.factory or "",
                config.partner or "",
                AssertionSigner(Path(config.signing_key_file or "")),
            ),
        }
        return builders[config.engine]()


def _shared_output(path: Path) -> Path:
    """A folder every job user may write in and none may touch another's files in."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o1777)
    return path


def container_runtimes(configs: Mapping[str, EngineConfig]) -> dict[str, str]:
    """The container runtime of every site that declares one (site -> runtime)."""
    return {site: c.container_runtime for site, c in configs.items() if c.container_runtime}


def unstaged_sites(configs: Mapping[str, EngineConfig]) -> frozenset[str]:
    """The sites that cannot hand jobs their datasets: Slurm sites without a staging
    folder (a site the file does not name runs `local`, which can)."""
    return frozenset(site for site, c in configs.items() if not c.stages_datasets())


def partner_sites(configs: Mapping[str, EngineConfig]) -> dict[str, PartnerTerms]:
    """The partner sites, each with its country and the projects that may cross to it."""
    return {
        site: terms for site, c in configs.items() if (terms := c.partner_terms(site)) is not None
    }


def tag_prefix(installation_id: str) -> str:
    """The tag engines put on this installation's jobs: `fbk-` and 8 hex digits of its id."""
    return f"fbk-{installation_id[:8]}"
