""".env.example and the REWARD_* variables: every compose variable documented with the
compose default, every REWARD_* variable a field of ``reward_server.settings.Settings`` (the
one source of truth for settings), each one compose passes documented in .env.example with
the field's default, and every reward-server environment accepted by the settings and the app.
"""

from __future__ import annotations

import os
import re
import shutil

from tests.deploy_files import (
    COMPOSE_FILES,
    DOCKERFILES,
    ENV_EXAMPLE,
    ENVS,
    REWARD_VAR_RE,
    SERVICE_DOCKERFILE,
    app_routes,
    compose_variables,
    env_of,
    model_for,
    parse_env_file,
    read,
    settings_cls,
    settings_names,
    uses_dockerfile,
)


def reward_variables() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rel in [*COMPOSE_FILES, ".env.example", *DOCKERFILES]:
        for name in REWARD_VAR_RE.findall(read(rel)):
            found.setdefault(name, set()).add(rel)
    return found


def test_reward_variables_are_settings_fields():
    fields = settings_names()
    unknown = {name: sorted(files) for name, files in reward_variables().items()
               if name.removeprefix("REWARD_").lower() not in fields}
    assert not unknown, f"REWARD_* variables that reward_server.settings.Settings lacks: {unknown}"


def test_env_example_documents_the_reward_settings_compose_passes():
    """The settings the stack takes from the host (``${REWARD_X:-default}``) are in
    .env.example, each as a Settings field with that field's default: the source of truth
    is ``reward_server.settings.Settings`` (docs/settings.md is checked against it too)."""
    fields = settings_cls().model_fields
    documented = {name: value
                  for name, value in parse_env_file(ENV_EXAMPLE, include_commented=True).items()
                  if name.startswith("REWARD_")}
    unknown = sorted(name for name in documented
                     if name.removeprefix("REWARD_").lower() not in fields)
    assert not unknown, f".env.example documents REWARD_* that are no settings: {unknown}"
    passed = {name for name in compose_variables() if name.startswith("REWARD_")}
    missing = sorted(passed - set(documented))
    assert not missing, f"REWARD_* settings compose passes but .env.example omits: {missing}"
    for name, value in documented.items():
        default = fields[name.removeprefix("REWARD_").lower()].default
        if default is None or value == "":
            continue  # unset in Settings: .env.example shows what "unset" resolves to
        if isinstance(default, int | float):
            assert float(value) == float(default), name
        else:
            assert value == str(default), name


def test_compose_defaults_equal_settings_defaults():
    fields = settings_cls().model_fields
    for name, defaults in compose_variables().items():
        if not name.startswith("REWARD_"):
            continue
        field = fields[name.removeprefix("REWARD_").lower()]
        for default in defaults:
            if field.default is None or default == "":
                continue
            if isinstance(field.default, int | float):
                assert float(default) == float(field.default), name
            else:
                assert default == str(field.default), name


def reward_service_envs():
    for rel in COMPOSE_FILES:
        for env_name in ENVS:
            model = model_for(rel, env_name)
            for name, svc in model["services"].items():
                if uses_dockerfile(svc, SERVICE_DOCKERFILE):
                    yield f"{rel}:{name}:{env_name}", env_of(svc)


def test_settings_accept_every_compose_environment(tmp_path, monkeypatch):
    """Each reward-server variant starts: its environment validates and names real profiles."""
    cls = settings_cls()
    for key in list(os.environ):
        if key.startswith("REWARD_"):
            monkeypatch.delenv(key)
    # A .env made from .env.example sits in the working directory of a local run.
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    cls()  # the compose-only variables in .env must not break the service's own .env reading
    seen = 0
    for where, env in reward_service_envs():
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.setenv(key, value)
            settings = cls()
            assert not settings.api_key, f"{where}: empty REWARD_API_KEY must mean no key"
            assert not getattr(settings, "judge_api_key", None), where
            if app_routes() is not None:
                from reward_server.app import create_app

                create_app(settings)  # checks REWARD_PROFILE against the known profiles
            seen += 1
    assert seen >= 4


def test_env_example_is_plain_key_value():
    for n, raw in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s\"'#]*", line), f".env.example:{n}: {raw!r}"


def test_every_compose_variable_is_documented():
    documented = parse_env_file(ENV_EXAMPLE, include_commented=True)
    missing = sorted(set(compose_variables()) - set(documented))
    assert not missing, f"not in .env.example: {missing}"


def test_env_example_defaults_match_compose():
    active = parse_env_file(ENV_EXAMPLE)
    documented = parse_env_file(ENV_EXAMPLE, include_commented=True)
    for name, defaults in compose_variables().items():
        if len(defaults) > 1:
            # Different defaults per file: .env.example must not override them by default.
            assert name not in active, f"{name} has defaults {defaults}; comment it out"
            assert documented[name] in defaults, name
            continue
        (default,) = defaults
        assert documented[name] == default, (
            f"{name}: .env.example says {documented[name]!r}, compose {default!r}"
        )


def test_every_env_example_variable_is_used():
    used = set(compose_variables()) | {"COMPOSE_PROFILES"}
    unused = sorted(set(parse_env_file(ENV_EXAMPLE, include_commented=True)) - used)
    assert not unused, f".env.example documents variables nothing uses: {unused}"
