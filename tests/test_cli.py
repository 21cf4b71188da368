"""The ``kairos`` lookup, replay, produce and health commands, against the session's real redis-server and
Tansu broker, and how they fail: one ``error: ...`` line and an exit code, never a traceback.

Lookups read a shop written in the serving contract's shapes (the serving
tests' ``shop``: its own prefix per test); replays and produce send to topics
of their own and read them back.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import typer
from kafka.admin import KafkaAdminClient
from typer.testing import CliRunner, Result

from streams.cli import app
from streams.pipeline.keys import RedisKeys
from streams.pipeline.retry import Failure
from streams.pipeline.views import RedisViews
from streams.serving.sample import write_alert
from streams.settings import KairosSettings
from streams.tools.demo import cli_exports
from streams.tools.devstack import DevStack, free_port
from streams.tools.replay import read_source
from tests.integration.harness import Pipeline, isolated_settings, settings_env
from tests.serving.conftest import Shop, shop  # noqa: F401 - the fixture, shared with the serving tests

pytestmark = pytest.mark.integration

RETAIL_CSV = """\
Invoice,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
1001,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
1001,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom
1001,POST,POSTAGE,1,2010-12-01 08:26:00,18.0,17850.0,United Kingdom
C1002,22633,HAND WARMER UNION JACK,-2,2010-12-01 08:28:00,1.85,17850.0,United Kingdom
1003,22961,JAM MAKING SET PRINTED,24,2010-12-01 08:30:00,1.45,,EIRE
1004,21754,HOME BUILDING BLOCK WORD,0,2010-12-01 08:34:00,5.95,13047.0,France
1004,21755,LOVE BUILDING BLOCK WORD,3,2010-12-01 08:34:00,5.95,13047.0,France
"""

PAYSIM_CSV = """\
step,type,amount,nameOrig,oldbalanceOrg,newbalanceOrig,nameDest,oldbalanceDest,newbalanceDest,isFraud,isFlaggedFraud
1,PAYMENT,9839.64,C1231006815,170136.0,160296.36,M1979787155,0.0,0.0,0.0,0.0
1,TRANSFER,181.0,C1305486145,181.0,0.0,C553264065,0.0,0.0,1.0,0.0
2,CASH_OUT,0.0,C840083671,0.0,0.0,C38997010,0.0,0.0,0.0,0.0
"""


def kairos(env: dict[str, str], *args: str) -> Result:
    """``kairos <args>`` in-process with ``env`` (wide enough that tables do not wrap)."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})


def failed(result: Result, code: int) -> str:
    """The one ``error: ...`` line of a command that failed with exit ``code`` and no traceback."""
    assert result.exit_code == code and isinstance(result.exception, SystemExit), result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def shop_env(shop: Shop) -> dict[str, str]:
    return {"KAIROS_REDIS_URL": shop.settings.redis_dsn(), "KAIROS_PREFIX": shop.settings.prefix}


def rows(output: str) -> list[list[str]]:
    """The cells of a rich table's body rows (``│ a │ b │``)."""
    return [[cell.strip() for cell in line.strip().strip("│").split("│")] for line in output.splitlines()
            if line.startswith("│")]


# Segments.


def test_an_analyst_lists_segments_largest_first(shop) -> None:
    result = kairos(shop_env(shop), "segments")
    assert result.exit_code == 0, result.output
    assert [row[:4] for row in rows(result.output)] == [
        ["1", "occasional browsers", "340", "63%"], ["0", "loyal big spenders", "120", "22%"],
        ["2", "new customers", "80", "15%"],
    ]
    assert "3 segments, 540 customers" in result.output


def test_a_script_reads_segments_as_the_api_json(shop) -> None:
    result = kairos(shop_env(shop), "segments", "--json")
    listing = json.loads(result.stdout)
    assert [s["name"] for s in listing["segments"]][0] == "occasional browsers" and listing["customers"] == 540


def test_one_segment_shows_its_typical_member_and_an_unknown_one_is_an_error(shop) -> None:
    detail = kairos(shop_env(shop), "segments", "2")
    assert detail.exit_code == 0 and "segment 2 · new customers · 80 customers" in detail.output
    assert ["spend", "240.00", "1.80"] in rows(detail.output)
    unknown = kairos(shop_env(shop), "segments", "9")
    assert unknown.exit_code == 1 and "error: no segment 9" in unknown.stderr


# Recommendations.


def test_a_cart_gets_rules_then_segment_then_global_best_sellers(shop) -> None:
    result = kairos(shop_env(shop), "recommend", "--cart", "tea,scones", "--customer", "c1", "--limit", "4")
    assert result.exit_code == 0, result.output
    assert rows(result.output) == [["1", "jam", "0.600", "rule"], ["2", "milk", "0.600", "rule"],
                                   ["3", "honey", "12", "segment"], ["4", "bread", "99", "global"]]
    assert "customer c1 in segment 0" in result.output


def test_an_item_gets_its_rules_and_an_unknown_item_is_an_error(shop) -> None:
    known = kairos(shop_env(shop), "recommend", "--item", "tea", "--json")
    assert [(i["sku"], i["source"]) for i in json.loads(known.stdout)["items"]][:2] == [("milk", "rule"),
                                                                                         ("scones", "rule")]
    unknown = kairos(shop_env(shop), "recommend", "--item", "durian")
    assert unknown.exit_code == 1 and "no rules or sales for SKU 'durian'" in unknown.stderr


def test_a_customer_alone_gets_their_segment_best_sellers(shop) -> None:
    known = kairos(shop_env(shop), "recommend", "--customer", "c1", "--limit", "3")
    assert rows(known.output) == [["1", "jam", "30", "segment"], ["2", "honey", "12", "segment"],
                                  ["3", "bread", "99", "global"]]
    unknown = kairos(shop_env(shop), "recommend", "--customer", "nobody")
    assert unknown.exit_code == 1 and "no customer 'nobody'" in unknown.stderr


def test_recommend_needs_a_cart_an_item_or_a_customer(shop) -> None:
    nothing = kairos(shop_env(shop), "recommend")
    both = kairos(shop_env(shop), "recommend", "--cart", "tea", "--item", "tea")
    assert nothing.exit_code == both.exit_code == 2 and "pass --cart A,B, --item SKU or --customer ID" in nothing.output


# Alerts.


def test_alerts_are_listed_newest_first_and_filtered_by_kind(shop) -> None:
    listing = kairos(shop_env(shop), "alerts")
    assert [row[1:3] for row in rows(listing.output)] == [["trend", "jam+scones"], ["surge", "category:toys"],
                                                          ["risk", "pay-1"]]
    assert rows(listing.output)[2][0] == "2026-11-22 06:01:17"
    surges = json.loads(kairos(shop_env(shop), "alerts", "--kind", "surge", "--json").stdout)
    assert [(a["kind"], a["reasons"]) for a in surges["alerts"]] == [("surge", ["sold 40 against a forecast of 12.5"])]
    bad = kairos(shop_env(shop), "alerts", "--kind", "boom")
    assert bad.exit_code == 2 and "alert kinds are risk, drift, trend, surge, slump, restock, anomaly" in bad.stderr
    write_alert(shop.redis, shop.keys, "anomaly", "all:all", 7.2,
                ["conversion_rate 0 over the last 4 minutes against a usual 0.21 (-7.2 sd)"], scope="all:all")
    anomalies = json.loads(kairos(shop_env(shop), "alerts", "--kind", "anomaly", "--json").stdout)["alerts"]
    assert [(a["subject"], a["details"]["scope"]) for a in anomalies] == [("all:all", "all:all")]


def test_propensity_shows_the_model_s_rules_and_a_session(shop) -> None:
    model = kairos(shop_env(shop), "propensity")
    assert "5,210 sessions learned" in model.output and "live ROC AUC 0.912" in model.output
    assert ["last_action = view", "1%", "2,284"] in rows(model.output)
    session = json.loads(kairos(shop_env(shop), "propensity", "--customer", "c1", "--json").stdout)
    assert (session["session_id"], session["status"], session["propensity"]) == ("s-1", "open", 0.62)
    unknown = kairos(shop_env(shop), "propensity", "--session", "nope")
    assert unknown.exit_code == 1 and "no session 'nope'" in unknown.stderr


def test_following_alerts_prints_the_recent_ones_then_each_new_one(shop) -> None:
    def raise_alert() -> None:
        time.sleep(0.5)
        write_alert(shop.redis, shop.keys, "slump", "category:garden", 0.4, ["sold 2 against a forecast of 12"])

    writer = threading.Thread(target=raise_alert)
    writer.start()
    result = kairos(shop_env(shop), "alerts", "--follow", "--limit", "1", "--count", "1")
    writer.join()
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("2026")]
    assert len(lines) == 2 and "trend  jam+scones" in lines[0]
    assert "slump  category:garden  0.4  sold 2 against a forecast of 12" in lines[1]


# Forecasts.


def test_forecasts_of_every_category_with_interval_and_error(shop) -> None:
    result = kairos(shop_env(shop), "forecast")
    assert result.exit_code == 0, result.output
    assert [row[0] for row in rows(result.output)] == ["books", "garden", "toys"]
    assert rows(result.output)[2][2:] == ["6.0 [4.0, 8.0]", "7.0", "1.20 / 1.80", "0.67"]


def test_one_series_shows_next_windows_actuals_and_error(shop) -> None:
    toys = kairos(shop_env(shop), "forecast", "--category", "toys")
    assert toys.exit_code == 0, toys.output
    assert "MAE 1.20 units vs seasonal-naive 1.80 (ratio 0.67: better than naive)" in toys.output
    body = rows(toys.output)
    assert body[0] == ["2026-11-22 06:00", "6.0", "[4.0, 8.0]", "60.00", "[40.0, 80.0]"]
    assert ["2026-11-22 05:00", "7.0", "70.00"] in body
    total = json.loads(kairos(shop_env(shop), "forecast", "--total", "--json").stdout)
    assert (total["scope"], total["key"], total["forecast_units"]) == ("total", "all", 41.0)


def test_an_unknown_series_names_the_known_ones(shop) -> None:
    result = kairos(shop_env(shop), "forecast", "--category", "tools")
    assert result.exit_code == 1
    assert "no forecast for category 'tools'; forecast category series: books, garden, toys" in result.stderr
    both = kairos(shop_env(shop), "forecast", "--category", "toys", "--total")
    assert both.exit_code == 2


# Analyst risk rules.


def test_an_analyst_adds_pauses_resumes_and_deletes_a_rule(shop) -> None:
    env = shop_env(shop)
    added = kairos(env, "rules", "add", "big-abroad", "amount > 1000 and ip_country != billing_country",
                "--action", "0.9", "--description", "large payment from abroad")
    assert added.exit_code == 0 and "added risk rule big-abroad" in added.stdout
    stored = json.loads(shop.redis.hget(shop.keys.risk_rules(), "big-abroad"))
    assert stored == {"expression": "amount > 1000 and ip_country != billing_country", "action": 0.9,
                      "enabled": True, "description": "large payment from abroad"}
    assert kairos(env, "rules", "pause", "big-abroad").exit_code == 0
    assert rows(kairos(env, "rules", "list").output)[0][:3] == ["big-abroad", "paused", "0.9"]
    assert kairos(env, "rules", "resume", "big-abroad").exit_code == 0
    assert json.loads(kairos(env, "rules", "list", "--json").stdout)["rules"][0]["enabled"] is True
    assert kairos(env, "rules", "delete", "big-abroad").exit_code == 0
    assert shop.redis.hget(shop.keys.risk_rules(), "big-abroad") is None
    again = kairos(env, "rules", "delete", "big-abroad")
    assert again.exit_code == 1 and "no risk rule 'big-abroad'" in again.stderr


@pytest.mark.parametrize(("expression", "action", "reason"), [
    ("amount > 1000 and ip_county == 'NG'", "block", "unknown field 'ip_county' (did you mean 'ip_country'?)"),
    ("amount > 1000", "deny", "action must be review, block or a score floor in (0, 1], not 'deny'"),
    ("amount > 1000", "1.5", "less than or equal to 1"),
    ("amount > " + "9" * 400, "block", "a number has at most 30 characters (at column 10)"),
    ("amount > " + "-" * 980 + "1", "block", "at most 3 unary operators (not, -) in a row"),
])
def test_a_bad_rule_is_refused_with_the_reason(shop, expression, action, reason) -> None:
    result = kairos(shop_env(shop), "rules", "add", "typo", expression, "--action", action)
    assert result.exit_code == 2 and reason in result.stderr
    assert shop.redis.hget(shop.keys.risk_rules(), "typo") is None


@pytest.mark.parametrize("command", [["segments"], ["alerts"], ["stock"], ["rules", "list"], ["health"],
                                     ["forget", "c1"]])
def test_a_command_without_redis_says_where_it_looked(command) -> None:
    result = kairos({"KAIROS_REDIS_URL": f"redis://user:secret@127.0.0.1:{free_port()}/0"}, *command)
    assert "cannot reach Redis at 127.0.0.1:" in failed(result, 1)
    assert "secret" not in result.output


# Replay.


@pytest.fixture
def replay_target(stack: DevStack, tmp_path: Path) -> Iterator[Pipeline]:
    """Topics of their own on the session's broker, and a consumer to read them back."""
    pipeline = Pipeline(stack, isolated_settings(stack, partitions=2), tmp_path)
    yield pipeline
    pipeline.close()


def test_a_retail_export_is_replayed_as_orders_keyed_by_customer(replay_target, tmp_path) -> None:
    export = tmp_path / "retail.csv"
    export.write_text(RETAIL_CSV)
    result = kairos(settings_env(replay_target.settings), "replay", str(export),
                 "--column", "InvoiceNo=Invoice", "--currency", "EUR", "--speed", "960")
    assert result.exit_code == 0, result.output
    records = replay_target.read_topic(replay_target.settings.topics.orders, 3)
    orders = sorted((json.loads(r.value) for r in records), key=lambda order: order["ts"])
    assert [(o["order_id"], o["customer_id"], o.get("country")) for o in orders] == [
        ("1001", "17850", "GB"), ("1003", "guest-1003", "IE"), ("1004", "13047", "FR")]
    assert sorted(r.key.decode() for r in records) == ["13047", "17850", "guest-1003"]
    assert [line["sku"] for line in orders[0]["lines"]] == ["85123A", "71053"] and orders[0]["currency"] == "EUR"
    sent_at = sorted(r.timestamp for r in records)
    assert sent_at[1] - sent_at[0] >= 200 and sent_at[2] - sent_at[1] >= 200  # 4 minutes of event time at 960x
    report = {tuple(row[:2]): row[2] for row in rows(result.output)}
    assert report[("sent", "orders")] == "3" and report[("skipped", "cancelled rows")] == "1"
    assert report[("skipped", "non-product rows (postage, fees...)")] == "1"
    assert report[("skipped", "returned rows (quantity <= 0)")] == "1"
    assert report[("read", "guest orders (no customer id)")] == "1"


def test_paysim_is_replayed_as_payments_and_late_labels(replay_target, tmp_path) -> None:
    sample = tmp_path / "paysim.csv"
    sample.write_text(PAYSIM_CSV)
    result = kairos(settings_env(replay_target.settings), "replay", str(sample), "--label-delay", "48")
    assert result.exit_code == 0, result.output
    topics = replay_target.settings.topics
    payments = replay_target.read_topic(topics.payments, 2)
    labels = replay_target.read_topic(topics.labels, 2)
    assert sorted(r.key.decode() for r in payments) == ["C1231006815", "C1305486145"]
    by_payment = {r.key.decode(): json.loads(r.value) for r in labels}
    assert {pid: label["is_fraud"] for pid, label in by_payment.items()} == {"ps-000000": False, "ps-000001": True}
    assert by_payment["ps-000001"]["ts"] == "2026-11-03T00:45:00.000Z"
    assert ["skipped", "rows with amount 0", "1"] in rows(result.output)


def test_a_folder_is_read_as_its_csv_files_in_name_order(tmp_path) -> None:
    header, *lines = RETAIL_CSV.replace("Invoice,", "InvoiceNo,").splitlines()
    (tmp_path / "2010-12-02.csv").write_text("\n".join([header, lines[-1].replace("2010-12-01", "2010-12-02")]))
    (tmp_path / "2010-12-01.csv").write_text("\n".join([header, *lines[:-1]]))
    (tmp_path / "notes.txt").write_text("not a CSV")
    fmt, files, source = read_source([tmp_path])
    assert fmt.value == "retail" and [f.name for f in files] == ["2010-12-01.csv", "2010-12-02.csv"]
    assert [(key, order["order_id"]) for _, key, order in source.events] == [
        ("17850", "1001"), ("guest-1003", "1003"), ("13047", "1004")]


def test_a_replay_that_cannot_start_says_why(tmp_path) -> None:
    export = tmp_path / "retail.csv"
    export.write_text(RETAIL_CSV)
    env = {"KAIROS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    unmapped = kairos(env, "replay", str(export), "--format", "retail")
    assert unmapped.exit_code == 2 and "has no column 'InvoiceNo'" in unmapped.stderr
    assert "--column InvoiceNo=<column>" in unmapped.stderr
    wrong_date = kairos(env, "replay", str(export), "-c", "InvoiceNo=Invoice", "--date-format", "%d/%m/%Y")
    assert wrong_date.exit_code == 2 and "does not match --date-format '%d/%m/%Y'" in wrong_date.stderr
    undetected = kairos(env, "replay", str(export))
    assert undetected.exit_code == 2 and "pass --format" in undetected.stderr
    both = kairos(env, "replay", str(export), "-c", "InvoiceNo=Invoice", "--speed", "60", "--rate", "10")
    assert both.exit_code == 2 and "not both" in both.stderr
    assert kairos(env, "replay", str(tmp_path / "missing.csv")).exit_code == 2


# Failing like a tool.


def unreachable() -> str:
    """An address nothing listens on."""
    return f"127.0.0.1:{free_port()}"


def test_every_command_that_connects_takes_the_addresses_as_options() -> None:
    commands = typer.main.get_command(app).commands
    rules = commands["rules"].commands
    options = {name: {option for param in command.params for option in param.opts}
               for name, command in [*commands.items(), *((f"rules {n}", c) for n, c in rules.items())]}
    kafka = {"worker", "produce", "simulate", "replay"}
    redis_users = {"worker", "serve", "health", "rebuild-views", "forget", "segments", "recommend", "alerts",
                   "forecast", "stock", "propensity", *(f"rules {name}" for name in rules)}
    assert {name for name, opts in options.items() if "--bootstrap" in opts} == kafka
    assert {name for name, opts in options.items() if "--redis-url" in opts} == redis_users


@pytest.mark.parametrize("command", [["worker"], ["serve"], ["health"], ["segments"], ["produce", "-t", "orders"],
                                     ["simulate", "--events", "1"], ["replay", "missing.csv"]])
def test_a_bad_setting_is_one_line_naming_the_variable(command) -> None:
    result = kairos({"KAIROS_PARTITIONS": "eight", "KAIROS_LOG_LEVEL": "loud"}, *command)
    assert failed(result, 2) == (
        "error: bad setting KAIROS_PARTITIONS: Input should be a valid integer, unable to parse string as an "
        "integer; bad setting KAIROS_LOG_LEVEL: Input should be 'debug', 'info', 'warning' or 'error'")


def test_a_malformed_nested_setting_is_one_line() -> None:
    assert "topics" in failed(kairos({"KAIROS_TOPICS": "{not json"}, "segments"), 2)


def test_produce_from_a_missing_file_says_so_before_connecting(tmp_path) -> None:
    result = kairos({"KAIROS_KAFKA_BOOTSTRAP": unreachable()}, "produce", "-t", "orders", str(tmp_path / "no.jsonl"))
    assert failed(result, 2) == f"error: cannot read {tmp_path / 'no.jsonl'}: No such file or directory"


def test_commands_that_cannot_reach_kafka_say_where_at_once(tmp_path) -> None:
    export = tmp_path / "retail.csv"
    export.write_text(RETAIL_CSV)
    (tmp_path / "events.jsonl").write_text('{"customer_id": "c1"}\n')
    address = unreachable()
    for command in (["produce", "-t", "orders", str(tmp_path / "events.jsonl")],
                    ["simulate", "--events", "10", "--rate", "0"],
                    ["replay", str(export), "-c", "InvoiceNo=Invoice"]):
        started = time.monotonic()
        line = failed(kairos({"KAIROS_KAFKA_BOOTSTRAP": address}, *command), 1)
        assert line.startswith(f"error: Kafka at {address} (--bootstrap or KAIROS_KAFKA_BOOTSTRAP): ")
        assert "Connection refused" in line and time.monotonic() - started < 10, command


def test_produce_refuses_an_unknown_topic_unless_asked_to_create_it(replay_target, tmp_path) -> None:
    settings = replay_target.settings
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"customer_id": "c1", "note": "for a topic of our own"}\n')
    typo = settings.topics.orders.replace("orders", "ordrs")
    env = {"KAIROS_KAFKA_BOOTSTRAP": unreachable(), "KAIROS_TOPICS": json.dumps(settings.topics.model_dump())}
    bootstrap = ["--bootstrap", settings.kafka_bootstrap]  # over the environment's unreachable one
    refused = failed(kairos(env, "produce", "-t", typo, str(lines), *bootstrap), 1)
    inputs = ", ".join(settings.topics.inputs())
    assert refused == (f"error: no topic {typo!r} at {settings.kafka_bootstrap}; the input topics are {inputs} "
                       "(--create makes a new topic)")
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        assert typo not in admin.list_topics()
    finally:
        admin.close()
    created = kairos(env, "produce", "-t", typo, str(lines), "--create", *bootstrap)
    assert created.exit_code == 0 and f"{typo}: sent 1, rejected 0" in created.stdout
    assert [record.key for record in replay_target.read_topic(typo, 1)] == [b"c1"]


def test_produce_sends_to_a_kairos_topic_keyed_by_customer(replay_target, tmp_path) -> None:
    settings = replay_target.settings
    click = {"event_id": "e1", "ts": "2026-11-01T10:00:00Z", "customer_id": "c7", "session_id": "s1",
             "action": "view", "sku": "tea"}
    lines = tmp_path / "clicks.jsonl"
    lines.write_text(json.dumps(click) + "\n" + json.dumps({**click, "action": "dance"}) + "\n")
    result = kairos(settings_env(settings), "produce", "-t", settings.topics.clicks, str(lines))
    assert result.exit_code == 0 and "sent 1, rejected 1" in result.stdout and "line 2: " in result.stdout
    assert [record.key for record in replay_target.read_topic(settings.topics.clicks, 1)] == [b"c7"]


def publish_worker_metrics(settings: KairosSettings, worker_id: str, failing: dict) -> None:
    """What a worker publishes every metrics flush (``Worker._flush_metrics``), through the same writer."""
    client = redis.Redis.from_url(settings.redis_dsn())
    with client, client.pipeline() as pipe:
        RedisViews(settings).worker_metrics(pipe, worker_id, {"ingest_lag": 0, "failing": json.dumps(failing)})
        pipe.execute()


def test_health_passes_while_a_live_worker_reports_nothing_failing(stack) -> None:
    settings = isolated_settings(stack).model_copy(update={"metrics_flush_seconds": 30.0})  # hashes outlive the test
    env = {"KAIROS_PREFIX": settings.prefix, "KAIROS_REDIS_URL": f"redis://{unreachable()}/0"}
    redis_url = ["--redis-url", stack.redis_url]  # over the environment's unreachable one
    nobody = failed(kairos(env, "health", *redis_url), 1)
    assert nobody == f"error: no worker updated {settings.prefix}:metrics:worker:* in the last 30 s"
    here = socket.gethostname()
    publish_worker_metrics(settings, f"{here}-41", {})
    assert kairos(env, "health", *redis_url).stdout == "ok: 1 worker(s) live, nothing failing\n"
    outage = Failure(since=time.time() - 12, failures=3, reason="ConnectionError: refused", last_logged=0)
    publish_worker_metrics(settings, "elsewhere-42", {"redis-flush": outage.to_dict()})
    failing = failed(kairos(env, "health", *redis_url), 1)
    assert re.fullmatch(r"error: worker elsewhere-42: redis-flush failing for 1[23] s \(ConnectionError: refused\)",
                        failing), failing
    local = kairos(env, "health", "--local", *redis_url)
    assert local.stdout == f"ok: 1 worker(s) on {here} live, nothing failing\n"
    client = redis.Redis.from_url(stack.redis_url)
    with client:
        client.hset(RedisKeys(settings.prefix).metrics("worker:elsewhere-42"), "updated_at", time.time() - 31)
    assert kairos(env, "health", *redis_url).exit_code == 0  # a worker silent for 31 s no longer counts


def test_rebuild_views_clears_every_partition_marker_and_only_those(stack) -> None:
    settings = isolated_settings(stack)
    keys = RedisKeys(settings.prefix)
    client = redis.Redis.from_url(stack.redis_url)
    with client:
        client.set(keys.views_published(0), "1")
        client.set(keys.views_published(3), "1")
        client.set(keys.metrics("ingest"), "kept")
        result = kairos({"KAIROS_PREFIX": settings.prefix}, "rebuild-views", "--redis-url", stack.redis_url)
        assert result.stdout == "asked the owners of 2 partition(s) to republish their views\n"
        assert client.exists(keys.views_published(0), keys.views_published(3)) == 0
        assert client.get(keys.metrics("ingest")) == b"kept"


def test_the_demo_exports_point_the_cli_at_its_broker_redis_and_prefix(stack) -> None:
    settings = isolated_settings(stack)
    command, *assignments = shlex.split(cli_exports(settings))
    env = dict(assignment.split("=", 1) for assignment in assignments)
    assert command == "export" and env == {"KAIROS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
                                           "KAIROS_REDIS_URL": stack.redis_url, "KAIROS_PREFIX": settings.prefix}
    assert f"{settings.prefix}:metrics:worker:*" in failed(kairos(env, "health"), 1)  # read from the stack's Redis
