"""Build (once, into the lab cache) the upstream storage controllers the lab runs and the stubs of their driver APIs.

csi-addons (github.com/csi-addons/kubernetes-csi-addons at :data:`CSI_ADDONS_VERSION`) is built from the Go module
proxy through a wrapper module that only requires it: ``go install pkg@version`` is refused by this workplace's
proxy (it asks ``@v/list``), and the module zip carries no ``vendor/``. The same module version provides the CRDs
(``config/crd/bases``); the driver-side protos come from the csi-addons/spec version its go.mod pins. The storage
simulator serves those protos on a unix socket, so their Python stubs are generated here with grpcio-tools, with
CSI's ``csi.proto`` (the version csi-addons requires) beside them: the protos import it by its Go path, which is no
Python module name, so that one import line is rewritten to the staged copy.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class CsiAddonsBuild:
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

    def to_dict(self) -> dict[str, str]:
        """The paths as strings, for the lab's state file (a later process needs no Go to find them again)."""
        return {name: str(path) for name, path in vars(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> CsiAddonsBuild:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**{name: Path(path) for name, path in data.items()})


def required_version(go_mod: str, module: str) -> str:
    """The version of ``module`` that the go.mod text ``go_mod`` requires."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(\S+)", go_mod, re.M)
    if match is None:
        raise BinaryError(f"{module} is not required by the csi-addons go.mod")
    return match.group(1)


def build_csi_addons(version: str, out_dir: Path) -> None:
    """Build the csi-addons manager and sidecar of ``version`` into ``out_dir`` (about 2 minutes cold on 2 cores)."""
    env = {**go_env(), "GOFLAGS": "-mod=mod"}
    work = out_dir / f"csi-addons-{version}-src"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "go.mod").write_text(f"module lab/csiaddons\n\ngo 1.26\n\nrequire {CSI_ADDONS_MODULE} {version}\n")
    run_build_command(["go", "mod", "download", CSI_ADDONS_MODULE], work, env)
    for package, binary in (("cmd/manager", CSI_ADDONS_MANAGER), ("sidecar", CSI_ADDONS_SIDECAR)):
        run_build_command(
            [
                "go",
                "build",
                "-trimpath",
                "-ldflags",
                "-s -w",
                "-o",
                str(out_dir / binary),
                f"{CSI_ADDONS_MODULE}/{package}",
            ],
            work,
            env,
        )
    shutil.rmtree(work, ignore_errors=True)


def staged_proto(proto: str) -> str:
    """``proto`` importing the staged ``csi.proto`` instead of its Go path."""
    return proto.replace(_CSI_IMPORT, f'import "{STUBS_PACKAGE}/csi.proto";')


def generate_stubs(spec_dir: Path, csi_dir: Path, out_dir: Path) -> None:
    """Generate the stubs of :data:`CSI_ADDONS_PROTOS` (from ``spec_dir``, with CSI's ``csi_dir``) into ``out_dir``."""
    staging = out_dir.with_name(f"{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    package = staging / STUBS_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""Generated from csi-addons/spec by sandbox.controller_build."""\n')
    shutil.copy(csi_dir / "csi.proto", package / "csi.proto")
    for name in CSI_ADDONS_PROTOS:
        (package / f"{name}.proto").write_text(staged_proto((spec_dir / name / f"{name}.proto").read_text()))
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    argv = ["protoc", f"-I{staging}", f"-I{include}", f"--python_out={staging}", f"--grpc_python_out={staging}"]
    argv += [f"{STUBS_PACKAGE}/{name}.proto" for name in ("csi", *CSI_ADDONS_PROTOS)]
    if protoc.main(argv) != 0:
        raise BinaryError(f"protoc failed on the csi-addons protos of {spec_dir}: {' '.join(argv)}")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)


def ensure_csi_addons(version: str = CSI_ADDONS_VERSION, build: bool = True) -> CsiAddonsBuild:
    """Find csi-addons ``version`` in the lab cache, building what is missing when ``build`` is true.

    Raises:
        BinaryError: something is missing and cannot be built (the message holds the failing command).

    """
    folder = cache_dir(KUBERNETES_VERSION) / f"csi-addons-{version}"
    if not all((folder / name).is_file() for name in (CSI_ADDONS_MANAGER, CSI_ADDONS_SIDECAR)):
        if not build:
            raise BinaryError(f"csi-addons {version} is not built in {folder}: `python -m sandbox.controller_build`")
        started = time.monotonic()
        build_csi_addons(version, folder)
        print(f"[lab-build] built csi-addons {version} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    module = module_dir(CSI_ADDONS_MODULE, version)
    stubs = folder / "python"
    if not (stubs / STUBS_PACKAGE / "replication_pb2_grpc.py").is_file():
        if not build:
            raise BinaryError(f"the csi-addons driver stubs are not generated in {stubs}")
        go_mod = (module / "go.mod").read_text()
        spec_dir, csi_dir = (
            module_dir(m, required_version(go_mod, m)) for m in (CSI_ADDONS_SPEC_MODULE, CSI_SPEC_MODULE)
        )
        generate_stubs(spec_dir, csi_dir, stubs)
    return CsiAddonsBuild(
        manager=folder / CSI_ADDONS_MANAGER,
        sidecar=folder / CSI_ADDONS_SIDECAR,
        crds=module / "config" / "crd" / "bases",
        stubs=stubs,
    )


def main() -> None:
    """Build (or find) the storage controllers and print where they are."""
    started = time.monotonic()
    found = ensure_csi_addons(build="--no-build" not in sys.argv)
    for name, path in vars(found).items():
        print(f"{name}: {path}")
    print(f"storage controllers ready in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
