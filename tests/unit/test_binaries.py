"""Unit tier: the lab binary resolver and the wrapper go.mod derived from a Kubernetes release's go.mod."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox import binaries

UPSTREAM_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/spf13/cobra v1.9.1
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""


def test_wrapper_go_mod_pins_every_staging_module_to_its_published_twin() -> None:
    text = binaries.wrapper_go_mod("v1.36.3", UPSTREAM_GO_MOD)
    assert "require k8s.io/kubernetes v1.36.3" in text
    assert "go 1.26.0" in text
    assert "godebug default=go1.26" in text
    for module in ("k8s.io/api", "k8s.io/client-go", "k8s.io/cri-streaming"):
        assert f"\t{module} => {module} v0.36.3" in text
    assert "./staging" not in text


def test_wrapper_go_mod_refuses_a_go_mod_without_staging_modules() -> None:
    with pytest.raises(binaries.BinaryError, match="no staging replace directives"):
        binaries.wrapper_go_mod("v1.36.3", "module k8s.io/kubernetes\n\ngo 1.26.0\n")


def make_executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_explicit_folder_wins_over_kubebuilder_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, assets = tmp_path / "explicit", tmp_path / "assets"
    explicit.mkdir()
    assets.mkdir()
    wanted = make_executable(explicit / "kube-apiserver")
    make_executable(assets / "kube-apiserver")
    monkeypatch.setenv("ORCHESTRATE_LAB_BIN", str(explicit))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    folders = binaries._search_folders(None, "v1.36.3")
    assert binaries.find_binary("kube-apiserver", folders) == wanted


def test_kubebuilder_assets_are_used_and_non_executables_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCHESTRATE_LAB_BIN", raising=False)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    (tmp_path / "kube-scheduler").write_text("not executable")
    wanted = make_executable(tmp_path / "kube-controller-manager")
    folders = binaries._search_folders(None, "v1.36.3")
    assert binaries.find_binary("kube-controller-manager", folders) == wanted
    assert os.access(wanted, os.X_OK)
    assert binaries.find_binary("kube-scheduler", [tmp_path]) != tmp_path / "kube-scheduler"


def test_missing_binary_without_build_names_the_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("ORCHESTRATE_LAB_BIN", str(tmp_path / "empty"))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(binaries.BinaryError, match="missing kube-apiserver") as error:
        binaries.ensure_binaries(build=False)
    assert str(tmp_path / "empty") in str(error.value)


def test_cache_is_keyed_by_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert binaries.cache_dir("v1.36.3") == tmp_path / "failover-orchestrator" / "lab" / "v1.36.3"
