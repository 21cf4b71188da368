"""The production compose file parses and only sets settings that exist."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.settings import KairosSettings

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def known_variables() -> set[str]:
    names = {f"KAIROS_{name.upper()}" for name in KairosSettings.model_fields}
    topics = KairosSettings.model_fields["topics"].annotation.model_fields
    names |= {f"KAIROS_TOPICS__{name.upper()}" for name in topics}
    return names


def kairos_environments(doc: dict) -> dict[str, dict[str, str]]:
    envs = {}
    for name, service in doc["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        envs[name] = {k: str(v) for k, v in env.items() if k.startswith("KAIROS_")}
    return envs


def test_compose_has_the_production_services() -> None:
    doc = compose()
    services = doc["services"]
    assert {"kafka", "redis", "worker", "simulator"} <= services.keys()
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["redis"]["image"].startswith("redis:7")
    assert services["simulator"]["profiles"] == ["sim"]


def test_every_kairos_variable_is_a_real_setting(monkeypatch) -> None:
    envs = kairos_environments(compose())
    assert envs["worker"], "the worker must be configured through KAIROS_* variables"
    known = known_variables()
    for service, env in envs.items():
        if not env:
            continue
        unknown = set(env) - known
        assert not unknown, f"{service} sets unknown settings: {sorted(unknown)}"
        for variable in list(known):
            monkeypatch.delenv(variable, raising=False)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        settings = KairosSettings()  # the values must also validate
        assert settings.kafka_bootstrap == env["KAIROS_KAFKA_BOOTSTRAP"]
        assert settings.redis_dsn() == env["KAIROS_REDIS_URL"]
