"""The ``kairos`` command line."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn
from urllib.parse import urlsplit

import typer

from streams.settings import KairosSettings

app = typer.Typer(help="Kairos: real-time commerce intelligence from Kafka to Redis.", no_args_is_help=True)

#: The options of every command that connects; they override KAIROS_KAFKA_BOOTSTRAP and KAIROS_REDIS_URL.
Bootstrap = Annotated[str | None, typer.Option("--bootstrap", metavar="HOST:PORT[,...]", show_default=False,
                                               help="Kafka bootstrap servers (default: KAIROS_KAFKA_BOOTSTRAP).")]
RedisUrl = Annotated[str | None, typer.Option("--redis-url", metavar="URL", show_default=False,
                                              help="Redis URL (default: KAIROS_REDIS_URL).")]


@app.command()
def worker(bootstrap: Bootstrap = None, redis_url: RedisUrl = None) -> None:
    """Run one worker against the configured Kafka and Redis (KAIROS_* settings)."""
    from streams.pipeline.worker import run_worker

    run_worker(load_settings(bootstrap, redis_url))


@app.command()
def produce(
    topic: str = typer.Option(..., "--topic", "-t", help="Topic to send to."),
    source: str = typer.Argument("-", help="JSON Lines file, or - for standard input."),
    key_field: str = typer.Option("", help="Field used as the message key (default: customer_id, payment_id for labels)."),
    create: bool = typer.Option(False, "--create", help="Create the topic if it does not exist (Kairos's own "
                                                          "topics are always created; any other is refused)."),
    bootstrap: Bootstrap = None,
) -> None:
    """Send JSON Lines events (one per line) to a topic, keyed by customer id."""
    from streams.tools.producer import UnknownTopic, prepare_topic, produce_lines

    with kafka_command(bootstrap) as settings:
        try:
            stream = sys.stdin.buffer if source == "-" else Path(source).open("rb")
        except OSError as exc:
            fail(f"cannot read {source}: {exc.strerror}", 2)
        with stream:
            try:
                prepare_topic(settings, topic, create)
            except UnknownTopic as exc:
                fail(str(exc), 1)
            report = produce_lines(settings, topic, stream, key_field or None)
    typer.echo(report.summary())
    raise typer.Exit(code=0 if report.sent else 1)


@app.command()
def serve(redis_url: RedisUrl = None) -> None:
    """Serve the lookup API and the live dashboard (KAIROS_API_HOST / _PORT / _KEY)."""
    from streams.serving import serve as run

    run(load_settings(redis_url=redis_url))


@app.command()
def health(
    local: bool = typer.Option(False, "--local", help="Only workers on this host (a container's healthcheck)."),
    redis_url: RedisUrl = None,
) -> None:
    """Exit 0 when a worker published its metrics in the last 30 s and reports nothing failing; else say why."""
    from streams.tools.health import worker_health

    with redis_command(redis_url) as settings:
        healthy, summary = worker_health(settings, socket.gethostname() if local else None)
    if not healthy:
        fail(summary, 1)
    typer.echo(summary)


@app.command()
def demo(
    rate: float = typer.Option(400.0, help="Events per second sent by the simulated shop."),
    customers: int = typer.Option(1000, help="Simulated customers."),
    days: float = typer.Option(3.0, help="Simulated days of shop activity."),
    seed: int = typer.Option(7, help="Simulator seed."),
    duration: float = typer.Option(0.0, help="Stop after this many seconds (0: run until Ctrl-C)."),
) -> None:
    """Start Tansu, redis-server, a worker and the simulated shop; show the live views."""
    from streams.tools.demo import demo_workdir, run_demo
    from streams.tools.devstack import MissingTool

    try:
        run_demo(load_settings(), rate, customers, days, seed, demo_workdir(), duration or None)
    except MissingTool as exc:
        fail(str(exc), 1)


@app.command()
def simulate(
    rate: float = typer.Option(500.0, help="Events per second (0: as fast as possible)."),
    events: int = typer.Option(0, help="Stop after this many events (0: the whole simulated period)."),
    seed: int = typer.Option(7),
    customers: int = typer.Option(2000),
    days: float = typer.Option(14.0, help="Simulated period."),
    fraud_rate: float = typer.Option(0.01),
    drift_at: float = typer.Option(0.0, help="Fraction of the run after which fraud patterns change (0: never)."),
    surges: int = typer.Option(2),
    chaos: float = typer.Option(0.0, help="Share of extra bad or duplicate messages."),
    inventory_skus: int = typer.Option(0, help="Best sellers whose stock is counted on the inventory topic (0: none)."),
    sellouts: int = typer.Option(0, help="Sell-outs planted among them (in --truth)."),
    browsing: float = typer.Option(1.0, help="Browsing sessions relative to the usual (orders unchanged): 1 gives "
                                   "about 95 % clicks, 0.1 about 87 % with three times the orders per click."),
    incidents: int = typer.Option(0, help="Traffic incidents to plant (bot burst, gateway failure, checkout break, "
                                  "card testing, broken producer, in turn); listed in the truth."),
    truth: Path = typer.Option(None, help="Write the planted ground truth (JSON) here."),
    out: Path = typer.Option(None, help="Write JSON Lines per topic into this folder instead of sending."),
    bootstrap: Bootstrap = None,
) -> None:
    """Generate a realistic shop (segments, bundles, seasonality, surges, fraud, late labels, stock, traffic incidents)."""
    from streams.tools.simulate import simulate as run

    config = dict(seed=seed, customers=customers, days=days, fraud_rate=fraud_rate,
                  fraud_drift_at=drift_at or None, surges=surges, chaos=chaos, inventory_skus=inventory_skus,
                  sellouts=sellouts, browsing=browsing, incidents=incidents)
    with kafka_command(bootstrap) as settings:
        typer.echo(run(settings, config, rate, events or None, truth, out))


BENCH_SUITES = ("pipeline", "serving", "segments", "baskets", "risk", "forecast", "anomaly", "determinism",
                "stockout", "propensity", "scaling")


@app.command()
def bench(
    suite: str = typer.Option("pipeline", help=f"What to measure: {', '.join(BENCH_SUITES)} or all."),
    events: int = typer.Option(300_000, help="pipeline: simulated events loaded for the throughput run; scaling: "
                               "events per cell of the grid."),
    seed: int = typer.Option(11),
    latency_rate: float = typer.Option(2000.0, help="pipeline: events/s sent during the latency run."),
    partitions: int = typer.Option(4),
    request_rate: float = typer.Option(1000.0, help="serving: HTTP requests/s from the load process."),
    datasets: Path = typer.Option(Path("../shared/datasets"), help="Folder of the public datasets (see its README)."),
    data: Path | None = typer.Option(None, help="baskets: only this folder of Online Retail-layout CSV files."),
    min_support: float = typer.Option(0.01, help="baskets: with --data, the support compared with FP-Growth."),
    record: bool = typer.Option(False, help="pipeline: append the figures to BENCHMARKS.md."),
    peer: str | None = typer.Option(None, help="pipeline: instead of the latency runs, compare with a peer engine "
                                    "on the same events: the ceiling, Kairos, then the peer (quix; needs the bench "
                                    "extra: pip install -e '.[bench]')."),
    workload: Path | None = typer.Option(None, help="pipeline with --peer: a folder of JSON Lines per topic "
                                         "(kairos simulate --out) instead of --events simulated events."),
    rounds: int = typer.Option(1, min=1, help="pipeline with --peer: rounds of the three runs, alternated."),
    customers: int = typer.Option(3000, help="determinism: simulated customers."),
    days: float = typer.Option(20.0, help="determinism: simulated days."),
    paced_rate: float = typer.Option(5000.0, help="determinism: events/s of the paced arrival."),
    held_topic: str = typer.Option("orders", help="determinism: the topic sent late in the held-back arrival."),
    surges: int = typer.Option(2, help="determinism: surges planted in the simulated shop (0: none)."),
    inventory_skus: int = typer.Option(0, help="determinism: best sellers whose stock is counted (0: none)."),
    sellouts: int = typer.Option(0, help="determinism: sell-outs planted among them."),
    held_days: float = typer.Option(2.0, help="determinism: how much event time the held-back topic lags."),
    arrival: list[str] = typer.Option([], help="determinism: arrivals to run (repeatable): topic-by-topic, "
                                      "interleaved, paced, held-back (the default four), three-workers."),
) -> None:
    """Measure the pipeline (throughput vs a raw aiokafka ceiling, event-to-Redis latency), the lookup
    API (vs raw Redis), and the models against exact batch answers on simulated and real data (anomaly: planted
    incidents on 8 simulated shops vs a batch IsolationForest)."""
    suites = BENCH_SUITES if suite == "all" else (suite,)
    if any(name not in BENCH_SUITES for name in suites):
        fail(f"unknown suite {suite!r}: choose from {', '.join(BENCH_SUITES)} or all", 2)
    from streams.tools.bench import BenchResult, append_to_benchmarks, bench_peers, bench_pipeline, bench_workdir, machine

    typer.echo(f"machine: {machine()}")
    for name in suites:
        typer.echo(f"== {name}", err=True)
        if name == "pipeline":
            result = BenchResult(" ".join(["kairos", *sys.argv[1:]]), machine())
            if peer is not None:
                bench_peers(result, peer, events, seed, partitions, workload, rounds)
            else:
                bench_pipeline(result, events, seed, latency_rate, partitions)
            if record:
                append_to_benchmarks(result, Path("BENCHMARKS.md"))
        elif name == "scaling":
            from streams.tools.bench import bench_scaling

            result = BenchResult(" ".join(["kairos", *sys.argv[1:]]), machine())
            bench_scaling(result, events, seed, partitions)
            if record:
                append_to_benchmarks(result, Path("BENCHMARKS.md"))
        elif name == "serving":
            from streams.serving.bench import run_serving_bench

            typer.echo(json.dumps(run_serving_bench(rate=request_rate, seed=seed), indent=2))
        elif name == "segments":
            from streams.tools.evaluation import segmentation

            segmentation.main([str(datasets / "online-retail-2010-12")])
        elif name == "baskets":
            from streams.tools.evaluation import baskets

            baskets.main([str(datasets), *(["--data", str(data), "--min-support", str(min_support)] if data else [])])
        elif name == "risk":
            from streams.tools.evaluation import risk

            risk.main(["--paysim", str(datasets / "paysim-sample" / "paysim_sample.csv"), "--summary"])
        elif name == "determinism":
            from streams.tools.determinism import ARRIVALS, TABLE_HEADER, run_determinism
            from streams.tools.simulation import ShopSimulator, SimulatorConfig

            simulator = ShopSimulator(SimulatorConfig(seed=seed, customers=customers, days=days, surges=surges,
                                                      inventory_skus=inventory_skus, sellouts=sellouts))
            shop = [(event.topic, event.key, event.value) for event in simulator.events()]
            fraud = set(simulator.ground_truth()["fraud_payments"])
            typer.echo(f"{len(shop):,} events (seed {seed}, {customers} customers, {days:g} days, {surges} surges)")
            typer.echo(TABLE_HEADER)
            run_determinism(shop, fraud, bench_workdir() / "determinism", paced_rate, tuple(arrival) or ARRIVALS,
                            held_topic, held_days, report=typer.echo)
        elif name == "stockout":
            from streams.tools.evaluation import stockout

            stockout.main(["--seeds", *map(str, range(1, 5))])
        elif name == "anomaly":
            from streams.tools.evaluation import anomaly

            anomaly.main(["--seeds", *map(str, range(1, 9))])
        elif name == "propensity":
            from streams.tools.evaluation import propensity

            propensity.main(["--seeds", "1", "2", "3", "--rees46",
                             str(datasets / "rees46-head" / "user_behavior_sample.csv")])
        else:
            from streams.tools.evaluation import forecasting

            forecasting.main(["--retail", str(datasets / "online-retail-2010-12"), "--seeds", *map(str, range(1, 9))])


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (1: not found or unreachable, 2: bad input)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def load_settings(bootstrap: str | None = None, redis_url: str | None = None) -> KairosSettings:
    """The KAIROS_* settings with ``--bootstrap`` / ``--redis-url`` over them; a bad value is one line (exit 2)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    overrides = {"kafka_bootstrap": bootstrap, "redis_url": redis_url}
    try:
        return KairosSettings(**{name: value for name, value in overrides.items() if value is not None})
    except ValidationError as exc:
        fail("; ".join(f"bad setting KAIROS_{'__'.join(map(str, error['loc'])).upper()}: {error['msg']}"
                       for error in exc.errors()), 2)
    except SettingsError as exc:
        fail(f"bad setting: {exc}", 2)


def redis_location(settings: KairosSettings) -> str:
    """Host and port of the configured Redis, without credentials."""
    url = urlsplit(settings.redis_dsn())
    return f"{url.hostname}:{url.port or 6379}"


@contextmanager
def lookup_failures(settings: KairosSettings) -> Iterator[None]:
    """Unknown ids and bad input (the API's errors) and an unreachable Redis, as messages and exit codes."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from streams.serving.api import ApiError

    try:
        yield
    except ApiError as exc:
        fail(exc.message, 2 if exc.status == 422 else 1)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        fail(f"cannot reach Redis at {redis_location(settings)} (--redis-url or KAIROS_REDIS_URL): {exc}", 1)


@contextmanager
def redis_command(redis_url: str | None) -> Iterator[KairosSettings]:
    """The settings of a command that uses Redis, its failures (see :func:`lookup_failures`) as one line."""
    settings = load_settings(redis_url=redis_url)
    with lookup_failures(settings):
        yield settings


@contextmanager
def kafka_command(bootstrap: str | None) -> Iterator[KairosSettings]:
    """The settings of a command that sends to Kafka; an unreachable or failing Kafka is one line, exit code 1."""
    from aiokafka.errors import KafkaError as AioKafkaError
    from kafka.errors import KafkaError

    settings = load_settings(bootstrap)
    try:
        yield settings
    except (KafkaError, AioKafkaError) as exc:
        fail(f"Kafka at {settings.kafka_bootstrap} (--bootstrap or KAIROS_KAFKA_BOOTSTRAP): {exc}", 1)


@app.command("rebuild-views")
def rebuild_views(redis_url: RedisUrl = None) -> None:
    """Make the running workers republish every customer view, segment id and risk payment view, and the forecast,
    stock, traffic-scope, open-session and propensity-model views, from state (as they do by themselves when
    Redis comes back empty): they do it within one metrics tick."""
    from streams.tools.health import request_views_rebuild

    with redis_command(redis_url) as settings:
        cleared = request_views_rebuild(settings)
    typer.echo(f"asked the owners of {cleared} partition(s) to republish their views")


@app.command()
def forget(
    customer_id: str = typer.Argument(..., metavar="CUSTOMER_ID", help="The customer's id as the shop sends it."),
    wait: float = typer.Option(30.0, min=0, help="Seconds to wait for a worker to apply it (0: just ask)."),
    redis_url: RedisUrl = None,
) -> None:
    """Erase a customer: state, views, payment views and alerts, applied by the worker that owns it (the
    erasure path; what was produced into Kafka ages out with the topics' retention, see the README)."""
    from streams.tools.lookups import forget_customer

    with redis_command(redis_url) as settings:
        applied = forget_customer(settings, customer_id, wait)
    if applied:
        typer.echo(f"erased customer {customer_id}")
    elif wait == 0:
        typer.echo(f"asked the workers to erase customer {customer_id}")
    else:
        fail(f"asked the workers to erase customer {customer_id}, and none did within {wait:.0f} s: is a worker "
             "running against this Redis and prefix? (the request stays; a worker applies it when it runs)", 1)


@app.command()
def chaos(
    scenario: list[str] = typer.Option(
        [], "--scenario", "-s",
        help="Fault scenario (repeatable; default: all): fault-free (the reference again: the differences "
             "timing alone makes), three-workers, graceful-stop, worker-added, two-three-two, redis-restart-aof, "
             "redis-restart-empty, kills, redis-pause, broker-pause, hostile."),
    repetitions: int = typer.Option(10, min=1, help="Runs of each scenario."),
    kills: int = typer.Option(20, min=1, help="kills: SIGKILLs (each followed by a restart) in one run."),
    hostile: int = typer.Option(100_000, min=11, help="hostile: hostile records interleaved with the events."),
    customers: int = typer.Option(1000, min=10, help="Simulated customers."),
    days: float = typer.Option(8.0, help="Simulated days."),
    seed: int = typer.Option(7, help="Simulator seed (the same events in every run)."),
    rate: float = typer.Option(1000.0, help="Events per second sent."),
    workdir: Path = typer.Option(Path(".kairos/chaos"), help="Where the runs' brokers, Redis and worker logs go."),
) -> None:
    """Send the same simulated shop through ordinary operations and faults; compare every exact view family
    (customer views, ingest counters, risk-scored payments, features, sales inputs, traffic scopes, event-time
    alert ids) with a fault-free
    run, and report the model alerts' differences."""
    from dataclasses import replace

    from streams.tools.faults import SCENARIOS, kills as kill_points, run_chaos, simulated_events

    names = scenario or [name for name in SCENARIOS if name != "reference"]
    unknown = [name for name in names if name not in SCENARIOS or name == "reference"]
    if unknown:
        fail(f"unknown scenario {unknown[0]!r}: choose from {', '.join(n for n in SCENARIOS if n != 'reference')}", 2)
    faults = {name: SCENARIOS[name] for name in names}
    if "kills" in faults:
        faults["kills"] = kill_points(kills, seed)
    if "hostile" in faults:
        faults["hostile"] = replace(faults["hostile"], hostile=hostile)
    events = simulated_events(seed, customers, days)
    typer.echo(f"{len(events):,} events (seed {seed}, {customers} customers, {days:g} days) at {rate:g}/s")
    results = run_chaos(faults, repetitions, events, workdir, rate, seed=seed,
                        report=lambda result: typer.echo(f"{result.row()} {result.examples or ''}"))
    bad = [result for result in results if not result.exact]
    typer.echo(f"{len(results) - len(bad)} of {len(results)} runs exact")
    raise typer.Exit(1 if bad else 0)


@app.command()
def replay(
    paths: list[Path] = typer.Argument(..., help="Data set CSV files, or folders (all their *.csv in name order)."),
    fmt: str | None = typer.Option(None, "--format", "-f",
                            help="retail, paysim, creditcard, groceries or bakery (default: told by the first file's header)."),
    speed: float | None = typer.Option(None, rich_help_panel="Pacing",
                                help="Pace by event time: event seconds per wall second (3600: an hour a second)."),
    rate: float | None = typer.Option(None, help="Pace by count: events per second.", rich_help_panel="Pacing"),
    limit: int | None = typer.Option(None, min=1, help="Stop after this many events."),
    column: list[str] = typer.Option([], "--column", "-c", rich_help_panel="Retail",
                                     help="Column mapping Default=Actual, e.g. InvoiceNo=Invoice (repeatable)."),
    guests: bool = typer.Option(True, "--guests/--no-guests", rich_help_panel="Retail",
                                help="Replay orders without a customer id as one-off guests, or skip them."),
    date_format: str | None = typer.Option(None, rich_help_panel="Retail",
                                    help="strptime format of the invoice dates (default: %Y-%m-%d %H:%M:%S)."),
    currency: str | None = typer.Option(None, rich_help_panel="Reading",
                                 help="Currency of the orders (default: GBP for retail, EUR for baskets)."),
    timezone: str | None = typer.Option(None, rich_help_panel="Reading",
                                 help="The shop's time zone, for retail and bakery times (default: Europe/London)."),
    start: str | None = typer.Option(None, rich_help_panel="Reading",
                              help="Event time of the first PaySim hour, credit-card payment or groceries basket "
                                   "(default: 2026-11-01T00:00Z)."),
    basket_gap: float | None = typer.Option(None, min=0.0, rich_help_panel="Reading",
                                     help="Seconds between groceries baskets (default: 60)."),
    label_delay: float | None = typer.Option(None, min=0.0, rich_help_panel="Reading",
                                      help="Hours from a PaySim or credit-card payment to its fraud label (default: 24)."),
    bootstrap: Bootstrap = None,
) -> None:
    """Replay a real data set into the input topics: retail CSVs as orders, PaySim and card fraud as payments and late labels."""
    from rich.console import Console

    from streams.tools.replay import ReplayInputError, replay_options, report_table
    from streams.tools.replay import replay as run

    with kafka_command(bootstrap) as settings:
        try:
            options = replay_options(column, date_format, guests=guests, currency=currency, timezone=timezone,
                                     start=start, basket_gap_seconds=basket_gap, label_delay_hours=label_delay)
            report = run(settings, paths, fmt, options, speed, rate, limit)
        except ReplayInputError as exc:
            fail(str(exc), 2)
    Console(markup=False).print(report_table(report))
    if report.failed:
        fail(f"{report.failed:,} events were not delivered", 1)
    if report.interrupted:
        raise typer.Exit(130)


@app.command()
def segments(
    segment_id: int | None = typer.Argument(None, min=0, help="Show this segment in detail (default: every segment)."),
    json_: bool = typer.Option(False, "--json", help="Print the API's JSON instead of a table."),
    redis_url: RedisUrl = None,
) -> None:
    """Customer segments: id, name, size and summary, largest first (from the Redis views)."""
    from streams.tools.lookups import show_segments

    with redis_command(redis_url) as settings:
        show_segments(settings, segment_id, json_)


@app.command()
def recommend(
    cart: str | None = typer.Option(None, help="SKUs in the cart, comma-separated: A,B."),
    item: str | None = typer.Option(None, help="One SKU: what is bought with it."),
    customer: str | None = typer.Option(None, help="Add this customer's segment best-sellers (alone: an empty cart)."),
    limit: int = typer.Option(10, min=1, max=100, help="Most suggestions."),
    json_: bool = typer.Option(False, "--json", help="Print the API's JSON instead of a table."),
    redis_url: RedisUrl = None,
) -> None:
    """What to suggest for a cart, a SKU or a customer: rules first, then segment and global best-sellers."""
    from streams.tools.lookups import show_recommendations

    if cart is None and item is None and customer is None:
        raise typer.BadParameter("pass --cart A,B, --item SKU or --customer ID", param_hint="'--cart' / '--item'")
    if item is not None and (cart is not None or customer is not None):
        raise typer.BadParameter("--item goes alone (a cart of one is --cart SKU)", param_hint="'--item'")
    with redis_command(redis_url) as settings:
        show_recommendations(settings, cart, item, customer, limit, json_)


@app.command()
def alerts(
    kind: list[str] = typer.Option([], "--kind", "-k",
                                   help="Only this kind: risk, drift, trend, surge, slump, restock, anomaly or "
                                   "abandon (repeatable)."),
    limit: int = typer.Option(20, min=1, max=100, help="Most recent alerts shown."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Then print new alerts as they come, until Ctrl-C."),
    count: int = typer.Option(0, min=0, help="With --follow: stop after this many new alerts (0: never)."),
    json_: bool = typer.Option(False, "--json", help="JSON (with --follow: one alert per line)."),
    redis_url: RedisUrl = None,
) -> None:
    """Recent alerts (payment risk, rising pairs, sales surges and slumps, restocks, traffic anomalies, abandoned
    carts), newest first."""
    from streams.tools.lookups import follow_alerts, show_alerts

    with redis_command(redis_url) as settings:
        if follow:
            follow_alerts(settings, kind, limit, json_, count)
        else:
            show_alerts(settings, kind, limit, json_)


@app.command()
def forecast(
    category: str | None = typer.Option(None, help="One category's forecast in detail."),
    sku: str | None = typer.Option(None, help="One (top) SKU's forecast in detail."),
    total: bool = typer.Option(False, "--total", help="The shop total in detail."),
    json_: bool = typer.Option(False, "--json", help="Print the API's JSON instead of tables."),
    redis_url: RedisUrl = None,
) -> None:
    """Sales forecasts: next windows with intervals, last actuals, error vs seasonal-naive (default: every category)."""
    from streams.tools.lookups import TOTAL_SERIES, show_forecast

    chosen = [(scope, key) for scope, key in (("category", category), ("sku", sku)) if key is not None]
    chosen += [TOTAL_SERIES] if total else []
    if len(chosen) > 1:
        raise typer.BadParameter("pass at most one of them", param_hint="'--category' / '--sku' / '--total'")
    with redis_command(redis_url) as settings:
        show_forecast(settings, chosen[0] if chosen else None, json_)


@app.command()
def stock(
    sku: str | None = typer.Option(None, help="One SKU's stock in detail."),
    limit: int = typer.Option(20, min=1, max=100, help="SKUs shown, soonest stock-out first."),
    json_: bool = typer.Option(False, "--json", help="Print the API's JSON instead of a table."),
    redis_url: RedisUrl = None,
) -> None:
    """Stock-out risk (from inventory counts): units on hand, hours until stock-out, restock alerts."""
    from streams.tools.lookups import show_stock

    with redis_command(redis_url) as settings:
        show_stock(settings, sku, limit, json_)


@app.command()
def propensity(
    session: str | None = typer.Option(None, help="One session's probability of ending in an order."),
    customer: str | None = typer.Option(None, help="A customer's latest session (the id the shop knows)."),
    json_: bool = typer.Option(False, "--json", help="Print the API's JSON instead of a table."),
    redis_url: RedisUrl = None,
) -> None:
    """Conversion propensity: the model (live AUC, its rules in words), or one session's probability."""
    from streams.tools.lookups import show_propensity

    with redis_command(redis_url) as settings:
        show_propensity(settings, session, customer, json_)


rules_app = typer.Typer(help="Analyst risk rules (kairos:risk:rules), picked up by the workers at runtime.",
                        no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("list")
def rules_list(json_: bool = typer.Option(False, "--json", help="Print the API's JSON instead of a table."),
               redis_url: RedisUrl = None) -> None:
    """Every analyst rule: state, action, expression, and why the workers rejected it, if they did."""
    from streams.tools.lookups import show_risk_rules

    with redis_command(redis_url) as settings:
        show_risk_rules(settings, json_)


@rules_app.command("add")
def rules_add(
    rule_id: str = typer.Argument(..., metavar="ID", help="Rule id: letters, digits, _ . : -"),
    expression: str = typer.Argument(..., metavar="EXPR",
                                     help="e.g. \"amount > 1000 and ip_country != billing_country\""),
    action: str = typer.Option("review", help="review, block, or a score floor in (0, 1] such as 0.9."),
    description: str = typer.Option("", help="What the rule is for (shown in alert reasons)."),
    redis_url: RedisUrl = None,
) -> None:
    """Add (or replace) a rule; an invalid one is refused with the reason (exit code 2)."""
    from streams.tools.lookups import add_risk_rule

    with redis_command(redis_url) as settings:
        typer.echo(add_risk_rule(settings, rule_id, expression, action, description))


@rules_app.command("pause")
def rules_pause(rule_id: str = typer.Argument(..., metavar="ID"), redis_url: RedisUrl = None) -> None:
    """Stop applying a rule without deleting it."""
    from streams.tools.lookups import set_risk_rule_enabled

    with redis_command(redis_url) as settings:
        typer.echo(set_risk_rule_enabled(settings, rule_id, False))


@rules_app.command("resume")
def rules_resume(rule_id: str = typer.Argument(..., metavar="ID"), redis_url: RedisUrl = None) -> None:
    """Apply a paused rule again."""
    from streams.tools.lookups import set_risk_rule_enabled

    with redis_command(redis_url) as settings:
        typer.echo(set_risk_rule_enabled(settings, rule_id, True))


@rules_app.command("delete")
def rules_delete(rule_id: str = typer.Argument(..., metavar="ID"), redis_url: RedisUrl = None) -> None:
    """Delete a rule."""
    from streams.tools.lookups import delete_risk_rule

    with redis_command(redis_url) as settings:
        typer.echo(delete_risk_rule(settings, rule_id))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
