"""Locate or build the lab's binaries: kube-apiserver, kube-controller-manager, kube-scheduler, kwok, etcd.

Resolution order for every binary:

1. an explicit folder (``ORCHESTRATE_LAB_BIN`` or the ``bin_dir`` argument);
2. ``KUBEBUILDER_ASSETS`` (envtest's convention);
3. the per-version cache under ``$XDG_CACHE_HOME/failover-orchestrator/lab/<kubernetes version>/``;
4. ``PATH``, for the Kubernetes components and kwok only.

What is still missing after that is built from the Go module proxy: the Kubernetes components through a small
wrapper module (``sandbox/kubebuild``) whose ``go.mod`` is derived from the pinned release's own ``go.mod``, etcd
3.6 through a wrapper of its own (Debian's etcd 3.4 lacks what Kubernetes 1.36's watches need), and kwok with
``go install``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
KWOK_VERSION = "v0.8.0"
ETCD_VERSION = "v3.6.16"

KUBE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
ALL_BINARIES = (*KUBE_COMPONENTS, "kwok", "etcd")

_WRAPPER_SOURCES = Path(__file__).parent / "kubebuild"
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/k8s\.io/[\w.-]+\s*$")


class BinaryError(RuntimeError):
    """A lab binary could not be found or built; the message holds the command and its output."""


@dataclass(frozen=True)
class LabBinaries:
    """Absolute paths of the binaries one lab needs."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    etcd: Path
    kwok_stages: Path


def cache_dir(version: str = KUBERNETES_VERSION) -> Path:
    """The folder holding the binaries built for one Kubernetes version."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "failover-orchestrator" / "lab" / version


def _search_folders(bin_dir: Path | None, version: str) -> list[Path]:
    folders: list[Path] = []
    for candidate in (bin_dir, os.environ.get("ORCHESTRATE_LAB_BIN"), os.environ.get("KUBEBUILDER_ASSETS")):
        if candidate:
            folders.append(Path(candidate))
    folders.append(cache_dir(version))
    return folders


def find_binary(name: str, folders: list[Path]) -> Path | None:
    """The first executable called ``name`` in ``folders``, then on ``PATH``."""
    for folder in folders:
        path = folder / name
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    return Path(found) if found else None


def run_build_command(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run one build step, logging it; :class:`BinaryError` with its output when it fails."""
    print(f"[lab-build] {' '.join(cmd)}  (in {cwd})", file=sys.stderr, flush=True)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BinaryError(
            f"command failed with exit code {result.returncode}: {' '.join(cmd)}\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )


def go_env() -> dict[str, str]:
    """The environment of the lab's Go builds (static binaries)."""
    return {**os.environ, "CGO_ENABLED": "0"}


def wrapper_go_mod(version: str, upstream_go_mod: str) -> str:
    """The wrapper module's go.mod: require the release and pin every staging module to its v0 twin.

    Args:
        version: the Kubernetes release, e.g. ``v1.36.3``.
        upstream_go_mod: the text of that release's own go.mod.

    """
    staging_version = "v0." + version.removeprefix("v1.")
    lines = ["module failover-orchestrator/kubebuild", ""]
    for line in upstream_go_mod.splitlines():
        if line.startswith(("go ", "godebug ")):
            lines.append(line)
    lines += ["", f"require k8s.io/kubernetes {version}", "", "replace ("]
    staging = sorted({m.group(1) for m in (_STAGING_REPLACE.match(line) for line in upstream_go_mod.splitlines()) if m})
    if not staging:
        raise BinaryError(f"no staging replace directives found in the go.mod of k8s.io/kubernetes {version}")
    lines += [f"\t{module} => {module} {staging_version}" for module in staging]
    lines += [")", ""]
    return "\n".join(lines)


def build_kubernetes(version: str, out_dir: Path, components: tuple[str, ...] = KUBE_COMPONENTS) -> None:
    """Build the Kubernetes control-plane components of ``version`` into ``out_dir``."""
    env = go_env()
    work = out_dir.parent / f"{out_dir.name}-src"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    info = subprocess.run(
        ["go", "list", "-m", "-json", f"k8s.io/kubernetes@{version}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if info.returncode != 0:
        raise BinaryError(f"go list -m -json k8s.io/kubernetes@{version} failed:\n{info.stderr}")
    go_mod_path = json.loads(info.stdout)["GoMod"]
    (work / "go.mod").write_text(wrapper_go_mod(version, Path(go_mod_path).read_text()))
    for component in components:
        (work / component).mkdir()
        shutil.copy(_WRAPPER_SOURCES / component / "main.go", work / component / "main.go")
    run_build_command(["go", "mod", "tidy"], work, env)
    minor = version.split(".")[1]
    ldflags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ldflags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor=1", f"-X {pkg}.gitMinor={minor}"]
    out_dir.mkdir(parents=True, exist_ok=True)
    for component in components:
        run_build_command(
            [
                "go",
                "build",
                "-trimpath",
                "-tags=selinux,notest",
                "-ldflags",
                " ".join(ldflags),
                "-o",
                str(out_dir / component),
                f"./{component}",
            ],
            work,
            env,
        )
    shutil.rmtree(work, ignore_errors=True)


def build_etcd(version: str, out_dir: Path) -> None:
    """Build etcd ``version`` into ``out_dir`` through a wrapper module (its own go.mod has local replaces).

    Kubernetes 1.36's clients stream lists (WatchList), which needs etcd's RequestWatchProgress: Debian's etcd 3.4
    lacks it and the controllers then notice changes only on relists, tens of seconds late.
    """
    env = go_env()
    work = out_dir.parent / f"{out_dir.name}-etcd-src"
    shutil.rmtree(work, ignore_errors=True)
    (work / "etcd").mkdir(parents=True)
    (work / "go.mod").write_text(
        f"module failover-orchestrator/etcdbuild\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 {version}\n"
    )
    shutil.copy(_WRAPPER_SOURCES / "etcd" / "main.go", work / "etcd" / "main.go")
    run_build_command(["go", "mod", "tidy"], work, env)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_build_command(
        ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out_dir / "etcd"), "./etcd"], work, env
    )
    shutil.rmtree(work, ignore_errors=True)


def build_kwok(version: str, out_dir: Path) -> None:
    """Install kwok ``version`` into ``out_dir`` with ``go install``."""
    env = go_env()
    env["GOBIN"] = str(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_build_command(["go", "install", f"sigs.k8s.io/kwok/cmd/kwok@{version}"], out_dir, env)


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat/node-heartbeat.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
    "volume/fast/pvc-provision.yaml",
    "volume/fast/pv-bind.yaml",
    "volume/fast/pv-delete.yaml",
    "volume/fast/pvc-delete.yaml",
)
"""kwok's shipped "fast" stages the lab runs: nodes Ready, pods Ready and deleted, PVCs of ``kwok-volume`` bound."""


def module_dir(module: str, version: str) -> Path:
    """The folder of ``module@version`` in the Go module cache (downloaded from the proxy when missing)."""
    info = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        env=go_env(),
    )
    if info.returncode != 0:
        raise BinaryError(f"go mod download -json {module}@{version} failed:\n{info.stderr}{info.stdout}")
    return Path(json.loads(info.stdout)["Dir"])


def ensure_kwok_stages(target: Path, version: str = KWOK_VERSION) -> Path:
    """Assemble kwok's stage definitions from its Go module into one file ``target`` (once)."""
    if target.is_file():
        return target
    stage_dir = module_dir("sigs.k8s.io/kwok", version) / "kustomize" / "stage"
    documents = [(stage_dir / name).read_text().strip() for name in KWOK_STAGES]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n---\n".join(documents) + "\n")
    return target


LAB_KWOK_STAGES = Path(__file__).parent / "kwok"
"""The lab's own kwok stages (``*.yaml``), for kubelet behaviour kwok's shipped stages lack."""


def lab_kwok_stages(upstream: Path, target: Path) -> Path:
    """Write ``target``: kwok's shipped stages from ``upstream`` followed by the lab's own (rewritten when changed)."""
    documents = [upstream.read_text().strip()]
    documents += [stage.read_text().strip() for stage in sorted(LAB_KWOK_STAGES.glob("*.yaml"))]
    text = "\n---\n".join(documents) + "\n"
    if not target.is_file() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        partial.write_text(text)
        partial.replace(target)
    return target


def ensure_binaries(
    bin_dir: Path | None = None,
    version: str = KUBERNETES_VERSION,
    build: bool = True,
) -> LabBinaries:
    """Find every lab binary, building the missing ones into the cache when ``build`` is true.

    Raises:
        BinaryError: a binary is missing and cannot be built (the message holds the failing command).

    """
    folders = _search_folders(bin_dir, version)
    target = cache_dir(version)
    paths: dict[str, Path] = {}
    missing_kube = [c for c in KUBE_COMPONENTS if find_binary(c, folders) is None]
    if missing_kube:
        if not build:
            raise BinaryError(f"missing {', '.join(missing_kube)}; looked in {', '.join(map(str, folders))}")
        started = time.monotonic()
        build_kubernetes(version, target, tuple(missing_kube))
        print(f"[lab-build] built {', '.join(missing_kube)} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    if find_binary("kwok", folders) is None:
        if not build:
            raise BinaryError(f"missing kwok; looked in {', '.join(map(str, folders))}")
        build_kwok(KWOK_VERSION, target)
    if not any((folder / "etcd").is_file() for folder in folders):
        if not build:
            raise BinaryError(f"missing etcd {ETCD_VERSION}; looked in {', '.join(map(str, folders))}")
        build_etcd(ETCD_VERSION, target)
    for name in ALL_BINARIES:
        found = find_binary(name, folders)
        if found is None:
            raise BinaryError(f"missing {name}; looked in {', '.join(map(str, folders))} and PATH")
        paths[name] = found
    return LabBinaries(
        kube_apiserver=paths["kube-apiserver"],
        kube_controller_manager=paths["kube-controller-manager"],
        kube_scheduler=paths["kube-scheduler"],
        kwok=paths["kwok"],
        etcd=paths["etcd"],
        kwok_stages=lab_kwok_stages(ensure_kwok_stages(target / "kwok-stages.yaml"), target / "kwok-stages-lab.yaml"),
    )


def main() -> None:
    """Build (or find) the lab binaries and print where they are."""
    started = time.monotonic()
    binaries = ensure_binaries(build=True) if "--no-build" not in sys.argv else ensure_binaries(build=False)
    for name, path in vars(binaries).items():
        print(f"{name}: {path}")
    print(f"lab binaries ready in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
