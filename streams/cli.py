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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
