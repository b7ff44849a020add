"""Container images for tests, built on this machine and never pulled from another host.

Plain Python, no pytest. `ensure_podman()` installs Debian's podman, runc, uidmap and
busybox-static when missing (under the machine-setup lock) and returns None, or a loud
reason why containers cannot run here, for `pytest.skip`. `busybox_image(tag)` builds
`localhost/fabriek-test-busybox:TAG` once per machine with `podman import`: a root file
system of Debian's static busybox with its applet links (/bin/sh, /bin/id, ...), an empty
/tmp and /etc/passwd; later calls find it in podman's store (`podman image exists`).

Facts (Debian 12, podman 4.3, no systemd): podman runs a container here only with
`--runtime runc --cgroup-manager=cgroupfs` and explicit `--ulimit nofile=1024:1024
--ulimit nproc=1024:1024`; those go into the test sites' configuration, as `PODMAN_GLOBAL`
and `PODMAN_RUN` below.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import Collection, Sequence
from pathlib import Path

from tests.setup_lock import machine_setup
from tests.slurm_install import _apt_install

PACKAGES = ("podman", "runc", "uidmap", "busybox-static")
PODMAN_GLOBAL = ("--runtime", "runc", "--cgroup-manager=cgroupfs")
PODMAN_RUN = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
BUSYBOX_REPOSITORY = "localhost/fabriek-test-busybox"
_BUSYBOX = Path("/bin/busybox")


def _static_busybox() -> bool:
    """Whether /bin/busybox is the static one (the dynamic one needs the host's libraries)."""
    try:
        data = _BUSYBOX.read_bytes()
    except OSError:
        return False
    if not data.startswith(b"\x7fELF\x02\x01"):  # 64-bit little-endian, as on this machine
        return False
    # Static: no program header of type PT_INTERP (3) names a dynamic loader.
    offset, size, count = (int.from_bytes(data[a:b], "little") for a, b in
                           ((0x20, 0x28), (0x36, 0x38), (0x38, 0x3A)))  # fmt: skip
    types = (int.from_bytes(data[offset + i * size :][:4], "little") for i in range(count))
    return 3 not in types


def ensure_podman() -> str | None:
    """None when podman and a static busybox are here, else why not."""
    with machine_setup():
        if shutil.which("podman") is None or shutil.which("runc") is None or not _static_busybox():
            failed = _apt_install(*PACKAGES)
            if failed:
                return f"could not install {' '.join(PACKAGES)}: {failed}"
    if not _static_busybox():
        return "no static busybox at /bin/busybox (Debian's busybox-static)"
    return None


def podman(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run podman with this machine's global options; its output is captured."""
    return subprocess.run(
        ["podman", *PODMAN_GLOBAL, *args], input=stdin, capture_output=True, timeout=300
    )


def _rootfs_tar() -> bytes:
    """The image's root file system as a tar stream, built in memory."""
    buffer = io.BytesIO()
    applets = subprocess.run(
        [str(_BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for folder, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("home", 0o755)):
            add(folder, tarfile.DIRTYPE, mode)
        add("bin/busybox", tarfile.REGTYPE, 0o755, _BUSYBOX.read_bytes())
        for applet in applets:
            if applet != "busybox":
                add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\n")
    return buffer.getvalue()


def busybox_image(tag: str = "1") -> str:
    """`localhost/fabriek-test-busybox:TAG`, built once on this machine from its static
    busybox with `podman import` (PATH=/bin), found in podman's store afterwards."""
    reference = f"{BUSYBOX_REPOSITORY}:{tag}"
    if podman("image", "exists", reference).returncode == 0:
        return reference
    with machine_setup():  # two test processes must not import it at once
        if podman("image", "exists", reference).returncode != 0:
            done = podman(
                "import", "--change", "ENV=PATH=/bin", "-", reference, stdin=_rootfs_tar()
            )
            if done.returncode != 0:
                raise RuntimeError(f"podman import failed: {done.stderr.decode()[-500:]}")
    return reference


def busybox_archive(folder: Path, tag: str = "1") -> str:
    """The busybox image saved as a docker-archive file in `folder`, readable by everyone:
    a reference (`docker-archive:PATH`) any user's rootless podman can run, with no
    registry. Returns the reference."""
    path = folder / f"fabriek-test-busybox-{tag}.tar"
    if not path.exists():
        done = podman("save", "--format", "docker-archive", "-o", str(path), busybox_image(tag))
        if done.returncode != 0:
            raise RuntimeError(f"podman save failed: {done.stderr.decode()[-500:]}")
        path.chmod(0o644)
    return f"docker-archive:{path}"


def ensure_subordinate_ids(user: str, first: int) -> None:
    """Give `user` 65536 subordinate UIDs and GIDs from `first` (rootless podman maps the
    container's other IDs to them), unless /etc/subuid has a range for them already: what
    a site's operators do for every user who may run containers."""
    with machine_setup():
        for table, option in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
            try:
                known = Path(table).read_text().splitlines()
            except OSError:
                known = []
            if not any(line.split(":", 1)[0] == user for line in known):
                subprocess.run(
                    ["usermod", option, f"{first}-{first + 65535}", user],
                    check=True, capture_output=True,
                )  # fmt: skip


def _toml_list(words: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{w}"' for w in words) + "]"


def podman_sites_file(
    path: Path, sites: Sequence[str], imaging: Collection[str], run_options: Sequence[str] = ()
) -> Path:
    """A sites file at `path`: every site on the `local` engine, those in `imaging` running
    images with this machine's podman (plus `run_options`, say `--tls-verify=false` for a
    registry on plain HTTP)."""
    podman = (
        'container_runtime = "podman"\n'
        f"container_global_options = {_toml_list(PODMAN_GLOBAL)}\n"
        f"container_run_options = {_toml_list([*PODMAN_RUN, *run_options])}\n"
    )
    tables = [
        f'[sites.{name}]\nengine = "local"\n' + (podman if name in imaging else "") + "\n"
        for name in sites
    ]
    path.write_text("".join(tables))
    return path


def busybox_variant(label: str) -> str:
    """A busybox image of its own digest (its config carries `label`), not cached: for a test
    that must see an image pulled from a registry, not found in podman's store by digest.
    Returns its local name; remove it with `podman rmi`."""
    reference = f"{BUSYBOX_REPOSITORY}-variant:{label}"
    done = podman(
        "import", "--change", "ENV=PATH=/bin", "--change", f"LABEL=fabriek.test={label}",
        "-", reference, stdin=_rootfs_tar(),
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"podman import failed: {done.stderr.decode()[-500:]}")
    return reference
