"""The ``kairos`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from streams.settings import KairosSettings

app = typer.Typer(help="Kairos: real-time commerce intelligence from Kafka to Redis.", no_args_is_help=True)


@app.command()
def worker() -> None:
    """Run one worker against the configured Kafka and Redis (KAIROS_* settings)."""
    from streams.pipeline.worker import run_worker

    run_worker(KairosSettings())


@app.command()
def produce(
    topic: str = typer.Option(..., "--topic", "-t", help="Topic to send to."),
    source: str = typer.Argument("-", help="JSON Lines file, or - for standard input."),
    key_field: str = typer.Option("", help="Field used as the message key (default: customer_id, payment_id for labels)."),
) -> None:
    """Send JSON Lines events (one per line) to a topic, keyed by customer id."""
    from streams.tools.producer import produce_lines

    stream = sys.stdin.buffer if source == "-" else Path(source).open("rb")
    with stream:
        report = produce_lines(KairosSettings(), topic, stream, key_field or None)
    typer.echo(report.summary())
    raise typer.Exit(code=0 if report.sent else 1)


@app.command()
def serve() -> None:
    """Serve the lookup API and the live dashboard (KAIROS_API_HOST / _PORT / _KEY)."""
    from streams.serving import serve as run

    run(KairosSettings())


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

    run_demo(rate, customers, days, seed, demo_workdir(), duration or None)


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
    truth: Path = typer.Option(None, help="Write the planted ground truth (JSON) here."),
    out: Path = typer.Option(None, help="Write JSON Lines per topic into this folder instead of sending."),
) -> None:
    """Generate a realistic shop (segments, bundles, seasonality, surges, fraud, late labels)."""
    from streams.tools.simulate import simulate as run

    config = dict(seed=seed, customers=customers, days=days, fraud_rate=fraud_rate,
                  fraud_drift_at=drift_at or None, surges=surges, chaos=chaos)
    typer.echo(run(KairosSettings(), config, rate, events or None, truth, out))


@app.command()
def bench(
    events: int = typer.Option(300_000, help="Simulated events loaded for the throughput run."),
    seed: int = typer.Option(11),
    latency_rate: float = typer.Option(2000.0, help="Events/s sent during the latency run."),
    partitions: int = typer.Option(4),
    record: bool = typer.Option(False, help="Append the figures to BENCHMARKS.md."),
) -> None:
    """Measure pipeline throughput (vs a raw aiokafka ceiling) and event-to-Redis latency."""
    from streams.tools.bench import BenchResult, append_to_benchmarks, bench_pipeline, machine

    result = BenchResult(" ".join(["kairos", *sys.argv[1:]]), machine())
    typer.echo(f"machine: {result.machine}")
    bench_pipeline(result, events, seed, latency_rate, partitions)
    if record:
        append_to_benchmarks(result, Path("BENCHMARKS.md"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
