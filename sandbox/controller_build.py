"""Build (once, into the lab cache) the upstream storage controllers the lab runs and the stubs of their driver APIs.

Two controller stacks, each from the Go module proxy at a pinned version through a wrapper module that only
requires it: csi-addons (the manager and sidecar) and Dell csm-replication (the replication controller and the
csi-replicator sidecar).

csi-addons (github.com/csi-addons/kubernetes-csi-addons at :data:`CSI_ADDONS_VERSION`) is built from the Go module
proxy through a wrapper module that only requires it: ``go install pkg@version`` is refused by this workplace's
proxy (it asks ``@v/list``), and the module zips carry no ``vendor/``. The same module version provides the CRDs
(``config/crd/bases``); the driver-side protos come from the csi-addons/spec version its go.mod pins. The storage
simulator serves those protos on a unix socket, so their Python stubs are generated here with grpcio-tools, with
CSI's ``csi.proto`` (the version csi-addons requires) beside them: the protos import it by its Go path, which is no
Python module name, so that one import line is rewritten to the staged copy.

Dell's driver API is dell-csi-extensions' ``replication.v1`` (with ``common.v1``) at the versions csm-replication's
go.mod requires; ``replication.proto`` imports ``common.proto`` by its bare name, rewritten the same way.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from sandbox.binaries import KUBERNETES_VERSION, BinaryError, cache_dir, go_env, module_dir, run_build_command

CSI_ADDONS_MODULE = "github.com/csi-addons/kubernetes-csi-addons"
CSI_ADDONS_VERSION = "v0.14.0"
CSI_ADDONS_SPEC_MODULE = "github.com/csi-addons/spec"
CSI_SPEC_MODULE = "github.com/container-storage-interface/spec"
CSI_ADDONS_PROTOS = ("identity", "replication", "volumegroup")
"""The csi-addons driver services the simulator answers (the sidecar forwards the others, which the lab never uses)."""

CSI_ADDONS_MANAGER = "csi-addons-manager"
CSI_ADDONS_SIDECAR = "csi-addons-sidecar"
STUBS_PACKAGE = "csiaddons_stubs"

_CSI_IMPORT = 'import "github.com/container-storage-interface/spec/lib/go/csi/csi.proto";'

DELL_REPLICATION_MODULE = "github.com/dell/csm-replication"
DELL_REPLICATION_VERSION = "v1.14.0"
DELL_EXTENSIONS_MODULE = "github.com/dell/dell-csi-extensions"
DELL_EXTENSIONS_PINS = {f"{DELL_EXTENSIONS_MODULE}/common": "v1.9.0"}
"""Replacements in the Dell build. common v1.10.0 (what csm-replication v1.14.0 requires) ships a generated
``common.pb.go`` whose raw descriptor is malformed: its ``go_package`` option carries length prefixes 0x38/0x36
for a 42-byte value, so every binary importing it panics in protobuf's init ("slice bounds out of range [-1:]").
v1.9.0 has the same ``common.proto`` and the same generated code but for those two bytes."""
DELL_CONTROLLER = "dell-replication-controller"
DELL_REPLICATOR = "dell-csi-replicator"
DELL_STUBS_PACKAGE = "dellcsi_stubs"

_COMMON_IMPORT = 'import "common.proto";'


class BuildPaths:
    """A build's paths, kept in the lab's state file so that a later process needs no Go to find them again."""

    def to_dict(self) -> dict[str, str]:
        """The paths as strings."""
        return {name: str(path) for name, path in vars(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Self:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**{name: Path(path) for name, path in data.items()})


@dataclass(frozen=True)
class CsiAddonsBuild(BuildPaths):
    """What the lab needs of one csi-addons version.

    Attributes:
        manager: the controller manager binary (``cmd/manager``).
        sidecar: the sidecar binary (``sidecar``).
        crds: the module's CRD folder (``config/crd/bases``).
        stubs: the folder to put on ``sys.path`` for :data:`STUBS_PACKAGE` (the driver services' Python stubs).
    """

    manager: Path
    sidecar: Path
    crds: Path
    stubs: Path


@dataclass(frozen=True)
class DellReplicationBuild(BuildPaths):
    """What the lab needs of one Dell csm-replication version.

    Attributes:
        controller: the replication controller binary (``cmd/replication-controller``).
        replicator: the csi-replicator sidecar binary (``cmd/csi-replicator``).
        crds: the module's CRD folder (``config/crd/bases``).
        stubs: the folder to put on ``sys.path`` for :data:`DELL_STUBS_PACKAGE` (the driver service's stubs).
    """

    controller: Path
    replicator: Path
    crds: Path
    stubs: Path


def required_version(go_mod: str, module: str) -> str:
    """The version of ``module`` that the go.mod text ``go_mod`` requires."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(\S+)", go_mod, re.M)
    if match is None:
        raise BinaryError(f"{module} is not required by the go.mod read")
    return match.group(1)


def build_go_binaries(
    module: str, version: str, packages: dict[str, str], out_dir: Path, pins: Mapping[str, str] | None = None
) -> None:
    """Build ``module``'s ``packages`` (package -> binary name) at ``version`` into ``out_dir``.

    ``pins`` replace dependencies (module -> version) where the required version cannot be used.
    """
    env = {**go_env(), "GOFLAGS": "-mod=mod"}
    work = out_dir / f"{Path(module).name}-{version}-src"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    replaces = "".join(f"replace {pinned} => {pinned} {pin}\n" for pinned, pin in (pins or {}).items())
    (work / "go.mod").write_text(
        f"module lab/{Path(module).name}\n\ngo 1.26\n\nrequire {module} {version}\n\n{replaces}"
    )
    run_build_command(["go", "mod", "download", module], work, env)
    for package, binary in packages.items():
        run_build_command(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out_dir / binary), f"{module}/{package}"],
            work,
            env,
        )
    shutil.rmtree(work, ignore_errors=True)


def staged_proto(proto: str, package: str = STUBS_PACKAGE) -> str:
    """``proto`` importing its staged dependencies (CSI's ``csi.proto``, Dell's ``common.proto``) from ``package``."""
    return proto.replace(_CSI_IMPORT, f'import "{package}/csi.proto";').replace(
        _COMMON_IMPORT, f'import "{package}/common.proto";'
    )


def generate_stubs(protos: dict[str, Path], package_name: str, out_dir: Path) -> None:
    """Generate the Python stubs of ``protos`` (name -> .proto file, dependencies first) as ``package_name``.

    The stubs land in ``out_dir`` (put it on ``sys.path``), replaced as a whole only once they all compiled.
    """
    staging = out_dir.with_name(f"{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    package = staging / package_name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'"""Generated by sandbox.controller_build from {", ".join(protos)}."""\n')
    for name, source in protos.items():
        (package / f"{name}.proto").write_text(staged_proto(source.read_text(), package_name))
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    argv = ["protoc", f"-I{staging}", f"-I{include}", f"--python_out={staging}", f"--grpc_python_out={staging}"]
    argv += [f"{package_name}/{name}.proto" for name in protos]
    if protoc.main(argv) != 0:
        raise BinaryError(f"protoc failed on {', '.join(map(str, protos.values()))}: {' '.join(argv)}")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)


def _ensure_binaries(
    module: str,
    version: str,
    packages: dict[str, str],
    folder: Path,
    build: bool,
    pins: Mapping[str, str] | None = None,
) -> None:
    if all((folder / name).is_file() for name in packages.values()):
        return
    if not build:
        raise BinaryError(f"{module} {version} is not built in {folder}: `python -m sandbox.controller_build`")
    started = time.monotonic()
    build_go_binaries(module, version, packages, folder, pins)
    print(f"[lab-build] built {module} {version} in {time.monotonic() - started:.0f}s", file=sys.stderr)


def ensure_csi_addons(version: str = CSI_ADDONS_VERSION, build: bool = True) -> CsiAddonsBuild:
    """Find csi-addons ``version`` in the lab cache, building what is missing when ``build`` is true.

    Raises:
        BinaryError: something is missing and cannot be built (the message holds the failing command).

    """
    folder = cache_dir(KUBERNETES_VERSION) / f"csi-addons-{version}"
    packages = {"cmd/manager": CSI_ADDONS_MANAGER, "sidecar": CSI_ADDONS_SIDECAR}
    _ensure_binaries(CSI_ADDONS_MODULE, version, packages, folder, build)
    module = module_dir(CSI_ADDONS_MODULE, version)
    stubs = folder / "python"
    if not (stubs / STUBS_PACKAGE / "replication_pb2_grpc.py").is_file():
        if not build:
            raise BinaryError(f"the csi-addons driver stubs are not generated in {stubs}")
        go_mod = (module / "go.mod").read_text()
        spec_dir, csi_dir = (
            module_dir(m, required_version(go_mod, m)) for m in (CSI_ADDONS_SPEC_MODULE, CSI_SPEC_MODULE)
        )
        protos = {"csi": csi_dir / "csi.proto"}
        protos |= {name: spec_dir / name / f"{name}.proto" for name in CSI_ADDONS_PROTOS}
        generate_stubs(protos, STUBS_PACKAGE, stubs)
    return CsiAddonsBuild(
        manager=folder / CSI_ADDONS_MANAGER,
        sidecar=folder / CSI_ADDONS_SIDECAR,
        crds=module / "config" / "crd" / "bases",
        stubs=stubs,
    )


def ensure_dell_replication(version: str = DELL_REPLICATION_VERSION, build: bool = True) -> DellReplicationBuild:
    """Find Dell csm-replication ``version`` in the lab cache, building what is missing when ``build`` is true.

    Raises:
        BinaryError: something is missing and cannot be built (the message holds the failing command).

    """
    pins = "".join(f"-{Path(pinned).name}-{pin}" for pinned, pin in DELL_EXTENSIONS_PINS.items())
    folder = cache_dir(KUBERNETES_VERSION) / f"csm-replication-{version}{pins}"
    packages = {"cmd/replication-controller": DELL_CONTROLLER, "cmd/csi-replicator": DELL_REPLICATOR}
    _ensure_binaries(DELL_REPLICATION_MODULE, version, packages, folder, build, DELL_EXTENSIONS_PINS)
    module = module_dir(DELL_REPLICATION_MODULE, version)
    stubs = folder / "python"
    if not (stubs / DELL_STUBS_PACKAGE / "replication_pb2_grpc.py").is_file():
        if not build:
            raise BinaryError(f"the Dell replication driver stubs are not generated in {stubs}")
        go_mod = (module / "go.mod").read_text()
        extensions = {name: f"{DELL_EXTENSIONS_MODULE}/{name}" for name in ("common", "replication")}
        protos = {
            name: module_dir(path, DELL_EXTENSIONS_PINS.get(path) or required_version(go_mod, path)) / f"{name}.proto"
            for name, path in extensions.items()
        }
        generate_stubs(protos, DELL_STUBS_PACKAGE, stubs)
    return DellReplicationBuild(
        controller=folder / DELL_CONTROLLER,
        replicator=folder / DELL_REPLICATOR,
        crds=module / "config" / "crd" / "bases",
        stubs=stubs,
    )


def main() -> None:
    """Build (or find) the storage controllers and print where they are."""
    started = time.monotonic()
    build = "--no-build" not in sys.argv
    for stack, found in (
        ("csi-addons", ensure_csi_addons(build=build)),
        ("dell", ensure_dell_replication(build=build)),
    ):
        for name, path in vars(found).items():
            print(f"{stack} {name}: {path}")
    print(f"storage controllers ready in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
