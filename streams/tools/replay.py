"""``kairos replay``: a public data set replayed into the input topics, keyed per the wire contract.

=========  ===============================================  ============================================
format     file                                             events
=========  ===============================================  ============================================
retail     invoice lines (UCI Online Retail layout; other   ``orders``: one per invoice, cancellations,
           exports with ``--column Default=Actual``)        returns and non-products skipped
paysim     PaySim transfers (``step, type, amount, ...``)   ``payments`` and their ``labels``, delayed
creditcard card payments in the ULB layout (``Time,       ``payments`` with ``features`` (the ``V<n>``
           V1...V28, Amount, Class``)                       signals) and their ``labels``, delayed
groceries  one basket per line, no header                   ``orders``: baskets ``gap`` seconds apart
bakery     ``Date, Time, Transaction, Item``                ``orders``: one per transaction
=========  ===============================================  ============================================

The readers are those of :mod:`streams.tools.sources`. Several retail files
(or a folder: its ``*.csv`` in name order) are read as one stream; the other
formats take one file. Without a format the first file's header decides
(groceries files have none, so ``--format groceries`` is needed).

Pacing: ``speed`` sends ``speed`` event seconds per wall second
(:func:`~streams.tools.sources.pacing.paced`), ``rate`` so many events per
second (:func:`at_rate`); without either, events go as fast as the broker
takes them. The kafka-python producer sends from its own I/O thread, so a
paced replay reaches the broker event by event while the main thread sleeps
(an asyncio producer would hold them until the sleeping loop ran again).

:class:`ReplayReport` says what was sent per event type and what each reader
read and skipped (cancelled rows, non-products, guest orders, blank lines...).
"""

from __future__ import annotations

import csv
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams.pipeline.ingest import ROUTING_FIELD
from streams.settings import KairosSettings
from streams.tools.producer import ensure_kairos_topics, kafka_producer
from streams.tools.sender import encode
from streams.tools.sources.creditcard import CREDITCARD_COLUMNS, read_creditcard
from streams.tools.sources.groceries import NO_ITEM, basket_orders, read_bakery, read_basket_lines, spaced
from streams.tools.sources.pacing import paced
from streams.tools.sources.paysim import DEFAULT_START, read_paysim
from streams.tools.sources.retail_csv import RetailColumns, RetailStats, read_retail_orders

#: ``(event type, key, wire dict)``: what the sender takes.
Event = tuple[str, str, dict[str, Any]]
T = TypeVar("T")

#: Fields of :class:`RetailColumns` that name a CSV column (the rest say how to read values).
RETAIL_COLUMN_FIELDS = ("invoice", "sku", "description", "quantity", "invoice_date", "unit_price", "customer",
                        "country")
PAYSIM_COLUMNS = ("step", "type", "amount", "nameOrig", "isFraud")
BAKERY_COLUMNS = ("Date", "Time", "Transaction", "Item")


class ReplayFormat(str, Enum):
    """The data set layouts ``kairos replay`` reads."""

    retail = "retail"
    paysim = "paysim"
    creditcard = "creditcard"
    groceries = "groceries"
    bakery = "bakery"


class ReplayInputError(ValueError):
    """A replay that cannot start: no such CSV, a missing column, an unreadable option (exit code 2)."""


@dataclass(frozen=True)
class ReplayOptions:
    """How to read the files: column mapping for retail, currency and times for all.

    ``timezone`` is the shop's, for retail and bakery times (it overrides
    ``columns.timezone``); ``currency`` ``None`` keeps the reader's (retail:
    ``columns.currency``, baskets: EUR).
    """

    columns: RetailColumns = RetailColumns()
    guests: bool = True
    currency: str | None = None
    timezone: str = RetailColumns().timezone
    start: str = DEFAULT_START
    basket_gap_seconds: float = 60.0
    label_delay_hours: float = 24.0


@dataclass
class ReplaySource:
    """One data set as events in send order, with the reader's account of what it read and skipped.

    ``account`` is called after sending: the retail reader counts as it reads.
    """

    events: Iterator[Event]
    total: int | None
    account: Callable[[], tuple[dict[str, int], dict[str, int]]]


@dataclass
class ReplayReport:
    """What a replay sent, per event type, and what the reader read and skipped."""

    format: ReplayFormat
    files: list[Path]
    sent: Counter[str] = field(default_factory=Counter)
    read: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def total(self) -> int:
        """Events handed to the producer."""
        return sum(self.sent.values())


def replay_format(name: str) -> ReplayFormat:
    """The format called ``name``."""
    try:
        return ReplayFormat(name)
    except ValueError:
        choices = ", ".join(f.value for f in ReplayFormat)
        raise ReplayInputError(f"--format {name!r}: expected one of {choices}") from None


def csv_files(paths: Sequence[Path]) -> list[Path]:
    """The files to read: each file as given, each folder as its ``*.csv`` in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise ReplayInputError(f"no *.csv file in folder {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ReplayInputError(f"no such file or folder: {path}")
    return files


def header(path: Path) -> list[str]:
    """The cells of a CSV file's first line."""
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def detect_format(path: Path, columns: RetailColumns = RetailColumns()) -> ReplayFormat:
    """The format a file's header announces (groceries files have no header and are never detected).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     bakery = Path(folder, "bakery.csv")
    ...     _ = bakery.write_text("Date,Time,Transaction,Item\\n2016-10-30,09:58:11,1,Bread\\n")
    ...     detect_format(bakery).value
    'bakery'
    """
    cells = set(header(path))
    if set(PAYSIM_COLUMNS) <= cells:
        return ReplayFormat.paysim
    if set(CREDITCARD_COLUMNS) <= cells and "V1" in cells:
        return ReplayFormat.creditcard
    if set(BAKERY_COLUMNS) <= cells:
        return ReplayFormat.bakery
    if columns.invoice in cells:
        return ReplayFormat.retail
    raise ReplayInputError(
        f"cannot tell the format of {path} from its first line; pass --format retail|paysim|creditcard|groceries|bakery "
        f"(groceries files have no header; a retail export needs its invoice column mapped, "
        f"e.g. --column {RetailColumns().invoice}=Invoice)"
    )


def retail_columns(mappings: Iterable[str], **reading: str) -> RetailColumns:
    """:class:`RetailColumns` with ``Default=Actual`` renames (default header or field name) and reading options.

    >>> retail_columns(["InvoiceNo=Invoice", "customer=Customer ID"], currency="EUR").customer
    'Customer ID'
    """
    defaults = RetailColumns()
    names = {getattr(defaults, name): name for name in RETAIL_COLUMN_FIELDS}
    names |= {name: name for name in RETAIL_COLUMN_FIELDS}
    renames: dict[str, str] = {}
    for mapping in mappings:
        default, equals, actual = mapping.partition("=")
        if not equals or not actual.strip() or default.strip() not in names:
            raise ReplayInputError(
                f"--column {mapping!r}: expected Default=Actual with Default one of {', '.join(names)}"
            )
        renames[names[default.strip()]] = actual.strip()
    return defaults.model_copy(update=renames | reading)


def replay_options(column_mappings: Iterable[str] = (), date_format: str | None = None, **given: Any) -> ReplayOptions:
    """:class:`ReplayOptions` from command-line values; ``None`` keeps a default.

    >>> options = replay_options(["InvoiceNo=Invoice"], timezone="Europe/Paris", guests=False, currency=None)
    >>> options.columns.invoice, options.timezone, options.guests, options.currency
    ('Invoice', 'Europe/Paris', False, None)
    """
    reading = {"date_format": date_format} if date_format else {}
    chosen = {name: value for name, value in given.items() if value is not None}
    return ReplayOptions(columns=retail_columns(column_mappings, **reading), **chosen)


def check_retail_file(path: Path, columns: RetailColumns) -> None:
    """Fail early when a retail file lacks a mapped column or its first date does not match the date format."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle)
        present = rows.fieldnames or []
        for name in RETAIL_COLUMN_FIELDS:
            column = getattr(columns, name)
            if column not in present:
                default = getattr(RetailColumns(), name)
                raise ReplayInputError(
                    f"{path} has no column {column!r} (its columns: {', '.join(present)}); "
                    f"map it with --column {default}=<column>"
                )
        first = next(rows, None)
    if first is not None:
        try:
            datetime.strptime(first[columns.invoice_date].strip(), columns.date_format)
        except ValueError:
            raise ReplayInputError(
                f"{path}: {columns.invoice_date} {first[columns.invoice_date]!r} does not match "
                f"--date-format {columns.date_format!r}"
            ) from None


def check_columns(path: Path, required: Sequence[str], fmt: ReplayFormat) -> None:
    """Fail early when a file lacks a column its format needs."""
    missing = [name for name in required if name not in header(path)]
    if missing:
        raise ReplayInputError(f"{path} is not a {fmt.value} file: no column {', '.join(map(repr, missing))}")


def keyed(event_type: str, values: Iterable[dict[str, Any]]) -> Iterator[Event]:
    """Wire dicts of one event type as events keyed per the contract (customer id; payment id for labels)."""
    route = ROUTING_FIELD[event_type]
    return ((event_type, value[route], value) for value in values)


def count_rows(path: Path) -> int:
    """Data rows of a CSV file with a header."""
    with path.open(newline="", encoding="utf-8") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def retail_source(files: list[Path], options: ReplayOptions) -> ReplaySource:
    """Orders from retail CSVs, read lazily; the reader's :class:`RetailStats` is the account."""
    columns = options.columns.model_copy(update={"timezone": options.timezone, "currency": options.currency
                                                 or options.columns.currency})
    for path in files:
        check_retail_file(path, columns)
    stats = RetailStats()

    def account() -> tuple[dict[str, int], dict[str, int]]:
        read = {"rows": stats.rows, "orders": stats.orders, "order lines": stats.lines,
                "guest orders (no customer id)": stats.guest_orders,
                "invoices split (over 500 lines)": stats.split_orders,
                "orders without a known country": stats.unknown_countries}
        skipped = {"cancelled rows": stats.cancelled_rows, "returned rows (quantity <= 0)": stats.returned_rows,
                   "non-product rows (postage, fees...)": stats.non_product_rows,
                   "unreadable rows": stats.invalid_rows, "guest orders (--no-guests)": stats.skipped_guest_orders,
                   "invoices without a product line": stats.empty_invoices}
        return read, skipped

    orders = read_retail_orders(files, columns, guests=options.guests, stats=stats)
    return ReplaySource(keyed("orders", orders), None, account)


def paysim_source(path: Path, options: ReplayOptions) -> ReplaySource:
    """Payments and their late labels, merged in event-time order."""
    check_columns(path, PAYSIM_COLUMNS, ReplayFormat.paysim)
    replay = read_paysim(path, label_delay_steps=options.label_delay_hours, start=options.start)
    rows = count_rows(path)
    read = {"rows": rows, "payments": len(replay.payments), "labels": len(replay.labels),
            "frauds": sum(label["is_fraud"] for label in replay.labels)}
    skipped = {"rows with amount 0": rows - len(replay.payments)}
    return ReplaySource(replay.events(), len(replay.payments) + len(replay.labels), lambda: (read, skipped))


def creditcard_source(path: Path, options: ReplayOptions) -> ReplaySource:
    """Card payments with their ``V<n>`` signals as ``features``, and their late labels, in event-time order."""
    check_columns(path, CREDITCARD_COLUMNS, ReplayFormat.creditcard)
    replay = read_creditcard(path, label_delay_seconds=options.label_delay_hours * 3600.0, start=options.start)
    read = {"rows": len(replay.payments), "payments": len(replay.payments), "labels": len(replay.labels),
            "frauds": sum(label["is_fraud"] for label in replay.labels),
            "zero amounts (card checks)": sum(payment["amount"] == 0 for payment in replay.payments)}
    return ReplaySource(replay.events(), len(replay.payments) + len(replay.labels), lambda: (read, {}))


def groceries_source(path: Path, options: ReplayOptions) -> ReplaySource:
    """One order per basket line, ``basket_gap_seconds`` apart from ``start``."""
    with path.open(newline="", encoding="utf-8") as handle:
        lines = sum(1 for _ in handle)
    baskets = list(read_basket_lines(path))
    orders = list(basket_orders(spaced(baskets, options.start, options.basket_gap_seconds), "groceries",
                                options.currency or "EUR"))
    read = {"lines": lines, "baskets": len(baskets), "items": sum(map(len, baskets))}
    return ReplaySource(keyed("orders", orders), len(orders), lambda: (read, {"blank lines": lines - len(baskets)}))


def bakery_source(path: Path, options: ReplayOptions) -> ReplaySource:
    """One order per transaction with at least one item."""
    check_columns(path, BAKERY_COLUMNS, ReplayFormat.bakery)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    transactions = len({row["Transaction"] for row in rows})
    baskets = list(read_bakery(path, options.timezone))
    orders = list(basket_orders(baskets, "bakery", options.currency or "EUR"))
    read = {"rows": len(rows), "transactions": transactions, "orders": len(orders)}
    skipped = {f"rows without an item ({NO_ITEM})": sum(row["Item"].strip() == NO_ITEM for row in rows),
               "transactions without an item": transactions - len(orders)}
    return ReplaySource(keyed("orders", orders), len(orders), lambda: (read, skipped))


def open_source(fmt: ReplayFormat, files: list[Path], options: ReplayOptions) -> ReplaySource:
    """The events of ``files`` read as ``fmt``."""
    if fmt is not ReplayFormat.retail and len(files) != 1:
        raise ReplayInputError(f"{fmt.value} replays one file, got {len(files)}")
    try:
        ZoneInfo(options.timezone)
        datetime.fromisoformat(options.start)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReplayInputError(f"--timezone/--start: {exc}") from None
    if fmt is ReplayFormat.retail:
        return retail_source(files, options)
    readers = {ReplayFormat.paysim: paysim_source, ReplayFormat.creditcard: creditcard_source,
               ReplayFormat.groceries: groceries_source,
               ReplayFormat.bakery: bakery_source}
    try:
        return readers[fmt](files[0], options)
    except ReplayInputError:
        raise
    except (KeyError, ValueError) as exc:
        raise ReplayInputError(f"{files[0]} is not a readable {fmt.value} file: {exc}") from None


def at_rate(items: Iterable[T], rate: float, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> Iterator[T]:
    """Yield ``items`` at ``rate`` (> 0) per second on average (each when its turn in the schedule comes).

    >>> now = [0.0]
    >>> list(at_rate("abc", rate=2.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)))
    ['a', 'b', 'c']
    >>> now[0]
    1.0
    """
    started = clock()
    for n, item in enumerate(items):
        ahead = started + n / rate - clock()
        if ahead > 0:
            sleep(ahead)
        yield item


def paced_events(events: Iterable[Event], speed: float) -> Iterator[Event]:
    """Events paced by their wire ``ts``: ``speed`` event seconds per wall second."""
    triples, values = itertools.tee(events)
    for (event_type, key, _), value in zip(triples, paced((value for _, _, value in values), speed)):
        yield event_type, key, value


def pace(events: Iterable[Event], speed: float | None, rate: float | None) -> Iterable[Event]:
    """Events paced by event time (``speed``), by count (``rate``) or not at all."""
    if speed is not None and rate is not None:
        raise ReplayInputError("pace by event time (--speed) or by events per second (--rate), not both")
    if speed is not None:
        if not speed > 0:
            raise ReplayInputError("--speed must be positive")
        return paced_events(events, speed)
    if rate is not None:
        if not rate > 0:
            raise ReplayInputError("--rate must be positive")
        return at_rate(events, rate)
    return events


def read_source(paths: Sequence[Path], fmt: str | None = None,
                options: ReplayOptions = ReplayOptions()) -> tuple[ReplayFormat, list[Path], ReplaySource]:
    """The files of ``paths``, their format (detected when ``None``) and their events; checks them before sending."""
    files = csv_files(paths)
    chosen = detect_format(files[0], options.columns) if fmt is None else replay_format(fmt)
    return chosen, files, open_source(chosen, files, options)


def send(settings: KairosSettings, events: Iterable[Event], report: ReplayReport,
         on_sent: Callable[[int], None] = lambda total: None) -> None:
    """Send ``events`` to their input topics (created when missing), counting into ``report``.

    ``on_sent`` gets the running count after each event. Ctrl-C stops the
    sending: what was handed to the producer is still delivered and counted
    (``report.interrupted``). Kafka being unreachable raises ``kafka.errors.KafkaError`` (at once when
    nothing listens at the bootstrap address).
    """
    ensure_kairos_topics(settings)
    started = time.monotonic()
    producer = kafka_producer(settings)
    failures: list[BaseException] = []
    try:
        for event_type, key, value in events:
            future = producer.send(getattr(settings.topics, event_type), encode(value), key=key.encode())
            future.add_errback(failures.append)
            report.sent[event_type] += 1
            on_sent(report.total)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        producer.flush()
        producer.close()
    report.seconds = time.monotonic() - started
    report.failed = len(failures)


def replay(settings: KairosSettings, paths: Sequence[Path], fmt: str | None = None,
           options: ReplayOptions = ReplayOptions(), speed: float | None = None, rate: float | None = None,
           limit: int | None = None) -> ReplayReport:
    """``kairos replay``: read, pace and send with a progress bar; return what was sent and skipped."""
    chosen, files, source = read_source(paths, fmt, options)
    events = pace(itertools.islice(source.events, limit) if limit is not None else source.events, speed, rate)
    total = source.total if limit is None else min(source.total or limit, limit)
    report = ReplayReport(chosen, files)
    progress_columns = [TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn() if total is not None else TextColumn("{task.completed:,} events"),
                        TimeElapsedColumn()]
    with Progress(*progress_columns, transient=True) as progress:
        task = progress.add_task(f"replaying {chosen.value} into {settings.kafka_bootstrap}", total=total)
        send(settings, events, report, lambda sent: progress.update(task, completed=sent))
    report.read, report.skipped = source.account()
    return report


def report_table(report: ReplayReport) -> Table:
    """The replay's outcome: sent per event type, read and skipped per reason (zero counts left out)."""
    rate = report.total / report.seconds if report.seconds > 0 else 0.0
    state = " (interrupted)" if report.interrupted else ""
    title = f"replay {report.format.value}{state}: {report.total:,} events sent"
    caption = f"{len(report.files)} file(s) · {report.seconds:,.1f} s · {rate:,.0f} events/s"
    table = Table(title=title, caption=caption, title_justify="left", min_width=max(len(title), len(caption)))
    table.add_column("")
    table.add_column("what")
    table.add_column("count", justify="right")
    sections = (("sent", dict(report.sent)), ("read", report.read), ("skipped", report.skipped),
                ("failed", {"deliveries failed": report.failed}))
    for section, counts in sections:
        for what, count in counts.items():
            if count:
                table.add_row(section, what, f"{count:,}")
    return table
