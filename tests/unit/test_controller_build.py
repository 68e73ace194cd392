"""Unit tier: the pieces of the controller builds (csi-addons, Dell csm-replication) that need no Go: the staged
proto imports and the pinned versions read from go.mod."""

from __future__ import annotations

from sandbox.controller_build import DELL_STUBS_PACKAGE, STUBS_PACKAGE, required_version, staged_proto


def test_the_csi_import_is_rewritten_to_the_staged_copy_and_nothing_else_changes() -> None:
    proto = (
        'syntax = "proto3";\npackage replication;\n\n'
        'import "github.com/container-storage-interface/spec/lib/go/csi/csi.proto";\n'
        'import "google/protobuf/descriptor.proto";\n'
        "message M {\n  map<string, string> secrets = 3 [(csi.v1.csi_secret) = true];\n}\n"
    )
    staged = staged_proto(proto)
    assert f'import "{STUBS_PACKAGE}/csi.proto";' in staged
    assert "github.com/container-storage-interface" not in staged
    assert staged.replace(f'import "{STUBS_PACKAGE}/csi.proto";', "") == proto.replace(
        'import "github.com/container-storage-interface/spec/lib/go/csi/csi.proto";', ""
    )


def test_dells_bare_common_import_is_rewritten_to_the_dell_package() -> None:
    proto = 'syntax = "proto3";\npackage replication.v1;\n\nimport "common.proto";\nmessage M {}\n'
    staged = staged_proto(proto, DELL_STUBS_PACKAGE)
    assert f'import "{DELL_STUBS_PACKAGE}/common.proto";' in staged
    assert 'import "common.proto";' not in staged
    assert staged.replace(f"{DELL_STUBS_PACKAGE}/", "") == proto


def test_required_versions_are_read_from_a_require_block_or_line() -> None:
    go_mod = (
        "module github.com/csi-addons/kubernetes-csi-addons\n\ngo 1.25.0\n\nrequire (\n"
        "\tgithub.com/container-storage-interface/spec v1.12.0\n"
        "\tgithub.com/csi-addons/spec v0.2.1-0.20250610152019-b5a7205f6a79\n)\n"
        "require github.com/other/module v1.0.0 // indirect\n"
    )
    assert required_version(go_mod, "github.com/csi-addons/spec") == "v0.2.1-0.20250610152019-b5a7205f6a79"
    assert required_version(go_mod, "github.com/container-storage-interface/spec") == "v1.12.0"
    assert required_version(go_mod, "github.com/other/module") == "v1.0.0"
