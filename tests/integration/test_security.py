"""Security against real processes: a Redis that speaks only TLS (``rediss://``, a test CA) and whose only user is
an ACL user with a password (the default user off) serves the worker's views, the API and the CLI; no secret
(the Redis password, the API key) appears in a worker's log or in the CLI's output, also when the password is
wrong."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import redis
import httpx
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from streams.cli import app
from streams.pipeline.pseudonyms import Pseudonyms
from streams.tools.devstack import DevStack, ManagedProcess, free_port, start_redis
from tests.integration.harness import (
    Pipeline, expected_views, isolated_settings, keys_mentioning, settings_env, shop_events,
)
from tests.serving.conftest import start_server

pytestmark = pytest.mark.integration

PASSWORD = f"pw-{uuid4().hex}"
API_KEY = f"key-{uuid4().hex}"
PSEUDONYM_KEY = f"hash-{uuid4().hex}"


def make_test_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate it signed for 127.0.0.1: (CA, certificate, key)."""
    ca, ca_key, cert, key, request = (folder / name for name in ("ca.crt", "ca.key", "redis.crt", "redis.key",
                                                                 "redis.csr"))
    names = folder / "san.ext"
    names.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=kairos test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
         "-extfile", names],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return ca, cert, key


@pytest.fixture
def acl_redis(tmp_path) -> Iterator[ManagedProcess]:
    """redis-server speaking TLS only (no plain port), with the default user off and one user ``kairos`` with a
    password and every permission."""
    folder = tmp_path / "acl-redis"
    folder.mkdir()
    ca, cert, key = make_test_ca(folder)
    port = free_port()
    server = start_redis(folder, port, extra_args=(
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
        "--user", "default", "off", "--user", "kairos", "on", f">{PASSWORD}", "~*", "&*", "+@all"))
    server.ca = ca  # type: ignore[attr-defined]
    yield server
    server.process.kill()  # SHUTDOWN needs the password; nothing here to persist
    server.process.wait()


def url(server: ManagedProcess, password: str = PASSWORD) -> str:
    """The ``rediss://`` URL of ``server`` with the CA to check it by (redis-py reads ``ssl_ca_certs``)."""
    return f"rediss://kairos:{password}@127.0.0.1:{server.port}/0?ssl_ca_certs={server.ca}&ssl_cert_reqs=required"


def test_redis_over_tls_with_an_acl_user_serves_the_worker_and_the_api_under_pseudonyms_and_no_secret_is_logged(
        stack: DevStack, acl_redis, tmp_path) -> None:
    """With ``KAIROS_PSEUDONYMIZE_KEY`` the views are those of the events under hashed ids, no raw customer id
    is in Redis, and the API looks a customer up by the raw id."""
    with pytest.raises(redis.ConnectionError):  # TLS only: a plain connection gets no answer
        redis.Redis(port=acl_redis.port, socket_timeout=2).ping()
    with pytest.raises(redis.AuthenticationError):  # the default user is off: a password is needed
        redis.Redis(port=acl_redis.port, ssl=True, ssl_ca_certs=str(acl_redis.ca)).ping()
    with pytest.raises(redis.ConnectionError):  # a server certificate that our CA did not sign is refused
        redis.Redis.from_url(f"rediss://kairos:{PASSWORD}@127.0.0.1:{acl_redis.port}/0?ssl_cert_reqs=required").ping()
    settings = isolated_settings(stack, redis_url=url(acl_redis), api_key=SecretStr(API_KEY),
                                 pseudonymize_key=SecretStr(PSEUDONYM_KEY))
    stored_id = Pseudonyms(PSEUDONYM_KEY)
    pipeline = Pipeline(stack, settings, tmp_path)
    try:
        events = shop_events(600, customers=30, seed=41)
        worker = pipeline.start_worker()
        pipeline.send_events(events)
        pipeline.wait_for_outcomes(len(events), timeout=120)
        expected = expected_views(events)
        pipeline.wait_for_customer_views(expected, stored_id=stored_id,
                                         what="customer views under pseudonyms through the ACL user")
        assert keys_mentioning(pipeline.redis, settings.prefix, "cust-") == []
        customer = sorted(expected)[0]
        server = start_server(settings)  # the API on a real uvicorn
        try:
            with httpx.Client(base_url=server.url, timeout=10) as api:
                assert api.get(f"/api/v1/customers/{customer}").status_code == 401
                answer = api.get(f"/api/v1/customers/{customer}", headers={"X-API-Key": API_KEY})
        finally:
            server.server.should_exit = True
            server.thread.join(10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["customer_id"] == customer
        assert answer.json()["features"]["orders"] == float(expected[customer]["orders"])
        assert worker.alive()
    finally:
        pipeline.close()
    log = worker.log()  # the whole life of the worker, its stop included
    assert "[^Worker]: Ready" in log and "Stopping" in log
    assert PASSWORD not in log and API_KEY not in log and PSEUDONYM_KEY not in log


def kairos(*args: str, env: dict[str, str]) -> Result:
    """The CLI in-process, with ``env`` as the environment it reads its settings from."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})


def test_the_cli_never_prints_the_redis_password_or_the_api_key(stack: DevStack, acl_redis) -> None:
    settings = isolated_settings(stack, redis_url=url(acl_redis), api_key=SecretStr(API_KEY))
    env = settings_env(settings)
    wrong = url(acl_redis, "wrong-" + PASSWORD)
    runs = {
        "segments, right password": kairos("segments", env=env),
        "segments, wrong password": kairos("segments", "--redis-url", wrong, env=env),
        "health, wrong password": kairos("health", env={**env, "KAIROS_REDIS_URL": wrong}),
        "rebuild-views, nobody listening": kairos("rebuild-views", "--redis-url",
                                                  f"redis://kairos:{PASSWORD}@127.0.0.1:1/0", env=env),
    }
    for what, run in runs.items():
        assert PASSWORD not in run.output and API_KEY not in run.output, (what, run.output)
        assert run.exception is None or isinstance(run.exception, SystemExit), (what, run.exception)
    assert runs["segments, right password"].exit_code == 0, runs["segments, right password"].output
    for what in ("segments, wrong password", "health, wrong password", "rebuild-views, nobody listening"):
        assert runs[what].exit_code == 1, (what, runs[what].output)
