"""Unit tier: configuration of hook header references, approval timeout and loss detection; finding the file.

Covers ``parse_config``: a hook header given as a plain string -> ConfigError naming file:line and the field
``groups.0.hooks.pre.0.headers.Authorization``, saying to give ``{env: ...}`` or ``{file: ...}`` (and not
repeating the value); a header with both ``env`` and ``file`` -> ConfigError; ``env``/``file``/``value`` references
accepted; ``approval.timeout: 30m`` parsed; ``loss_detection`` probes and window parsed and ``probes: 0`` rejected.
``config_path`` order: explicit, ``$ORCHESTRATE_CONFIG``, ``./orchestrate.yaml``, then
``$XDG_CONFIG_HOME/failover-orchestrator/orchestrate.yaml``. And that ``orchestrate.config`` does not pull in the
``sandbox`` package (neither in its source nor at import time in a fresh interpreter).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import orchestrate.config
from orchestrate.config import CONFIG_ENV, ConfigError, config_path, parse_config, user_config_path
from tests.unit.config_texts import MINIMAL_CONFIG
from workflows.groups import HeaderSource

REPO = Path(__file__).parents[2]
CONFIG = Path("/etc/failover/orchestrate.yaml")


def with_hook_header(header: str) -> str:
    """MINIMAL_CONFIG with one pre-hook whose Authorization header is ``header`` (the YAML value, on line 20)."""
    return MINIMAL_CONFIG + (
        "    hooks:\n"
        "      pre:\n"
        "        - name: dns\n"
        "          url: https://dns.example/switch\n"
        "          headers:\n"
        f"            Authorization: {header}\n"
    )


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_plain_string_header_is_refused_with_file_line_and_field() -> None:
    text = with_hook_header("Bearer plain-secret-value")
    with pytest.raises(ConfigError) as error:
        parse_config(text, CONFIG)
    message = str(error.value)
    line = line_of(text, "Authorization:")
    assert line == 20
    assert f"{CONFIG}:{line}: groups.0.hooks.pre.0.headers.Authorization: " in message
    assert "{env: VARIABLE}" in message and "{file: PATH}" in message
    assert "plain-secret-value" not in message  # the error does not repeat what may be a secret


def test_header_with_both_env_and_file_is_refused() -> None:
    text = with_hook_header("{env: HOOK_TOKEN, file: /run/secrets/token}")
    with pytest.raises(ConfigError) as error:
        parse_config(text, CONFIG)
    message = str(error.value)
    assert f"{CONFIG}:20: groups.0.hooks.pre.0.headers.Authorization: " in message
    assert "exactly one of env: VARIABLE, file: PATH or value: TEXT" in message


def test_empty_header_reference_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"headers\.Authorization: .*exactly one of"):
        parse_config(with_hook_header("{}"), CONFIG)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("{env: HOOK_TOKEN}", HeaderSource(env="HOOK_TOKEN")),
        ("{file: /run/secrets/token}", HeaderSource(file="/run/secrets/token")),
        ("{value: application/json}", HeaderSource(value="application/json")),
    ],
)
def test_header_references_are_accepted(header: str, expected: HeaderSource) -> None:
    config = parse_config(with_hook_header(header), CONFIG)
    hook = config.group("pg-prod").hook("pre", "dns")
    assert hook is not None
    assert hook.headers == {"Authorization": expected}


def test_approval_timeout_is_a_duration() -> None:
    config = parse_config(MINIMAL_CONFIG + "    approval:\n      planned: true\n      timeout: 30m\n", CONFIG)
    approval = config.group("pg-prod").approval
    assert approval.timeout == timedelta(minutes=30)
    assert approval.planned is True


def test_approval_timeout_defaults_to_an_hour_and_rejects_nonsense() -> None:
    assert parse_config(MINIMAL_CONFIG, CONFIG).group("pg-prod").approval.timeout == timedelta(hours=1)
    text = MINIMAL_CONFIG + "    approval:\n      timeout: soon\n"
    with pytest.raises(ConfigError, match=rf"{CONFIG}:{line_of(text, 'timeout:')}: groups\.0\.approval\.timeout: "):
        parse_config(text, CONFIG)


def test_loss_detection_probes_and_window_are_parsed() -> None:
    config = parse_config(MINIMAL_CONFIG + "    loss_detection:\n      probes: 5\n      window: 20s\n", CONFIG)
    detection = config.group("pg-prod").loss_detection
    assert (detection.probes, detection.window) == (5, timedelta(seconds=20))
    default = parse_config(MINIMAL_CONFIG, CONFIG).group("pg-prod").loss_detection
    assert (default.probes, default.window) == (3, timedelta(seconds=6))


def test_loss_detection_needs_at_least_one_probe() -> None:
    text = MINIMAL_CONFIG + "    loss_detection:\n      probes: 0\n      window: 20s\n"
    with pytest.raises(ConfigError) as error:
        parse_config(text, CONFIG)
    assert f"{CONFIG}:{line_of(text, 'probes: 0')}: groups.0.loss_detection.probes: " in str(error.value)
    assert "greater than or equal to 1" in str(error.value)


# --------------------------------------------------------------------------------------------- config_path


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A working directory and an XDG config home, both empty; no $ORCHESTRATE_CONFIG."""
    work, xdg = tmp_path / "work", tmp_path / "xdg"
    work.mkdir()
    xdg.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    user = xdg / "failover-orchestrator" / "orchestrate.yaml"
    return {"work": work, "local": work / "orchestrate.yaml", "user": user, "env": tmp_path / "from-env.yaml"}


def create(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MINIMAL_CONFIG)
    return path


def test_user_config_path_follows_xdg_config_home(places: dict[str, Path]) -> None:
    assert user_config_path() == places["user"]


def test_config_path_order(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing exists: ./orchestrate.yaml (so that the error names the usual place)
    assert config_path() == Path("orchestrate.yaml")
    # only the user's file
    create(places["user"])
    assert config_path() == places["user"]
    # ./orchestrate.yaml wins over the user's file
    create(places["local"])
    assert config_path() == Path("orchestrate.yaml")
    assert config_path().resolve() == places["local"].resolve()
    # $ORCHESTRATE_CONFIG wins over ./orchestrate.yaml (even before it exists)
    monkeypatch.setenv(CONFIG_ENV, str(places["env"]))
    assert config_path() == places["env"]
    # an explicit path wins over everything
    explicit = places["work"] / "explicit.yaml"
    assert config_path(explicit) == explicit


def test_empty_orchestrate_config_variable_is_ignored(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, "")
    create(places["user"])
    assert config_path() == places["user"]


# --------------------------------------------------------------------------------------------- no sandbox


def test_config_module_source_does_not_import_sandbox() -> None:
    assert orchestrate.config.__file__ is not None
    source = Path(orchestrate.config.__file__).read_text()
    import_lines = [line.strip() for line in source.splitlines() if line.strip().startswith(("import ", "from "))]
    assert import_lines, "the module has imports"
    assert not [line for line in import_lines if "sandbox" in line]


def test_importing_config_does_not_load_sandbox() -> None:
    code = "import orchestrate.config, sys; print(any(m.startswith('sandbox') for m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
