"""The lookups in a terminal: ``kairos segments``, ``recommend``, ``alerts``, ``forecast`` and ``rules``.

Every read goes through :class:`~streams.serving.queries.ServingQueries` and
every input check through the lookup API's own helpers
(:mod:`streams.serving.api`), so the terminal and the API answer the same
question the same way: same recommendation merge, same rule validation, same
messages. A failure raises the API's :class:`~streams.serving.api.ApiError`
(404: unknown id, 422: invalid input), which ``kairos`` prints with an exit
code. Each ``show_*`` prints rich tables, or with ``as_json`` the API's JSON
answer for that lookup; the rule edits return one line saying what they did.
Times are shown in UTC.
"""

from __future__ import annotations

import asyncio
import time
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from models.forecasting.windows import TOTAL
from streams.pipeline.keys import RedisKeys
from streams.pipeline.pseudonyms import Pseudonyms
from streams.serving.api import (
    LOOKUP_TIMEOUT_SECONDS,
    STREAM_BLOCK_MS,
    ApiError,
    cart_items,
    found,
    not_found,
    redis_client,
    validated_rule,
)
from streams.serving.queries import ServingQueries
from streams.serving.schemas import (
    Alert,
    AlertKind,
    AlertList,
    Forecast,
    ForecastList,
    PropensityModel,
    Recommendations,
    RiskRuleBody,
    RiskRuleList,
    RiskRuleView,
    SegmentList,
    SegmentProfile,
    SessionPropensity,
    StockRisk,
    StockRiskList,
)
from streams.settings import KairosSettings

T = TypeVar("T")
#: Scope and key of the shop-total forecast series.
TOTAL_SCOPE, _, TOTAL_KEY = TOTAL.partition(":")
TOTAL_SERIES = (TOTAL_SCOPE, TOTAL_KEY)
KIND_STYLES = {"risk": "bold red", "surge": "green", "slump": "yellow", "trend": "cyan", "restock": "magenta",
               "anomaly": "bold magenta", "abandon": "yellow"}
SOURCE_STYLES = {"rule": "bold", "segment": "cyan", "global": "dim"}
#: How a window's start is shown, in one series' view and in a listing of series.
WINDOW = "%Y-%m-%d %H:%M"
LISTED_WINDOW = "%m-%d %H:%M"
#: Known keys named in the message for an unknown forecast series.
KNOWN_KEYS_SHOWN = 10


def lookup(settings: KairosSettings, query: Callable[[ServingQueries], Awaitable[T]],
           socket_timeout: float = LOOKUP_TIMEOUT_SECONDS) -> T:
    """Run ``query`` against the configured Redis and prefix, over a connection pool closed afterwards."""

    async def run() -> T:
        queries = ServingQueries(redis_client(settings, socket_timeout), RedisKeys(settings.prefix),
                                 pseudonyms=Pseudonyms(settings.pseudonymize_key))
        try:
            return await query(queries)
        finally:
            await queries.redis.aclose()

    return asyncio.run(run())


def emit(answer: BaseModel, as_json: bool, render: Callable[[Any], RenderableType]) -> None:
    """Print ``answer`` as the API's JSON, or as ``render`` draws it (no rich markup: texts print as they are)."""
    if as_json:
        sys.stdout.write(answer.model_dump_json(indent=2) + "\n")
    else:
        Console(markup=False).print(render(answer))


def utc(ts: float | None, layout: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Epoch seconds as UTC time in ``layout``; ``-`` when unknown.

    >>> utc(1795327277.5), utc(1795327277.5, WINDOW), utc(None)
    ('2026-11-22 06:01:17', '2026-11-22 06:01', '-')
    """
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime(layout)


def figure(value: float | None, digits: int = 1) -> str:
    """A number with thousands separators, ``-`` when unknown."""
    return "-" if value is None else f"{value:,.{digits}f}"


def titled(table: Table, title: str, note: str | None = None) -> Group:
    """``table`` under a heading line and above an optional note (neither wraps to the table's width)."""
    return Group(Text(title, style="bold"), table, *([Text(note, style="dim")] if note else []))


def columns(*names: tuple[str, str]) -> Table:
    """A table with these ``(name, justify)`` columns."""
    table = Table()
    for name, justify in names:
        table.add_column(name, justify=justify)
    return table


def interval(lower: float | None, upper: float | None) -> str:
    """``[lower, upper]`` of a forecast."""
    return f"[{figure(lower)}, {figure(upper)}]"


# Segments.


def segments_table(listing: SegmentList) -> Group:
    """Segment profiles, largest first: id, name, size, share, summary."""
    table = columns(("id", "right"), ("name", "left"), ("size", "right"), ("share", "right"), ("summary", "left"))
    for segment in listing.segments:
        share = segment.size / listing.customers if listing.customers else 0.0
        table.add_row(str(segment.segment_id), segment.name, f"{segment.size:,}", f"{share:.0%}", segment.summary)
    return titled(table, f"{len(listing.segments)} segments, {listing.customers:,} customers",
                  None if listing.segments else "no segment profiled yet")


def segment_view(profile: SegmentProfile) -> Group:
    """One segment: its typical member (centroid) and how far each feature stands out (z-score)."""
    table = columns(("feature", "left"), ("typical member", "right"), ("z-score", "right"))
    features = sorted(profile.centroid.keys() | profile.traits.keys(),
                      key=lambda name: -abs(profile.traits.get(name, 0.0)))
    for name in features:
        table.add_row(name, figure(profile.centroid.get(name), 2), figure(profile.traits.get(name), 2))
    return titled(table, f"segment {profile.segment_id} · {profile.name} · {profile.size:,} customers",
                  profile.summary)


def show_segments(settings: KairosSettings, segment_id: int | None, as_json: bool) -> None:
    """Every segment profile, or one segment's in detail."""
    if segment_id is None:
        emit(lookup(settings, lambda queries: queries.segments()), as_json, segments_table)
        return
    profile = lookup(settings, lambda queries: queries.segment(segment_id))
    emit(found(profile, f"no segment {segment_id}"), as_json, segment_view)


# Recommendations.


def recommendations_table(answer: Recommendations) -> Group:
    """Suggested SKUs, best first, with score and source (rule, segment or global best-sellers)."""
    about = f"cart {', '.join(answer.cart)}" if answer.cart else "no cart"
    if answer.customer_id is not None:
        about += f" · customer {answer.customer_id} " + (
            f"in segment {answer.segment_id}" if answer.segment_id is not None else "(no segment yet)")
    table = columns(("#", "right"), ("sku", "left"), ("score", "right"), ("source", "left"))
    for rank, item in enumerate(answer.items, start=1):
        score = f"{item.score:.3f}" if item.source == "rule" else f"{item.score:,.0f}"
        table.add_row(str(rank), item.sku, score, Text(item.source, style=SOURCE_STYLES.get(item.source, "")))
    note = ("score: confidence (noisy-or over the cart's rules) for rules, recent units for best-sellers"
            if answer.items else "nothing to suggest yet")
    return titled(table, about, note)


def show_recommendations(settings: KairosSettings, cart: str | None, item: str | None, customer_id: str | None,
                         limit: int, as_json: bool) -> None:
    """What goes with one SKU, with a cart (``A,B``; plus the customer's segment best-sellers) or with a customer."""
    if item is not None:
        answer = found(lookup(settings, lambda queries: queries.item_recommendations(item, limit)),
                       f"no rules or sales for SKU {item!r}")
    elif cart is not None:
        skus = cart_items(cart)
        answer = lookup(settings, lambda queries: queries.cart_recommendations(skus, customer_id, limit))
    else:
        answer = found(lookup(settings, lambda queries: queries.customer_recommendations(customer_id or "", limit)),
                       f"no customer {customer_id!r}")
    emit(answer, as_json, recommendations_table)


# Alerts.


def alert_row(alert: Alert) -> list[RenderableType]:
    """Time (event time, UTC), kind, subject, score and reasons of one alert."""
    return [utc(alert.ts), Text(alert.kind, style=KIND_STYLES.get(alert.kind, "")), alert.subject,
            f"{alert.score:.3g}", "; ".join(alert.reasons)]


def alerts_table(listing: AlertList) -> Group:
    """Alerts, newest first."""
    table = columns(("time (UTC)", "left"), ("kind", "left"), ("subject", "left"), ("score", "right"),
                    ("reasons", "left"))
    for alert in listing.alerts:
        table.add_row(*alert_row(alert))
    return titled(table, f"{len(listing.alerts)} alerts, newest first", None if listing.alerts else "no alert yet")


def alert_line(alert: Alert) -> Text:
    """One alert on one line, for following the stream."""
    time_, kind, subject, score, reasons = alert_row(alert)
    return Text.assemble(f"{time_}  ", kind, f"  {subject}  {score}  {reasons}")


def stream_position(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``) as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def alert_kinds(kinds: Sequence[str]) -> list[str]:
    """``kinds`` if each is an alert kind; 422 otherwise."""
    unknown = [kind for kind in kinds if kind not in get_args(AlertKind)]
    if unknown:
        raise ApiError(422, "invalid_request",
                       f"--kind {', '.join(unknown)}: alert kinds are {', '.join(get_args(AlertKind))}")
    return list(kinds)


def show_alerts(settings: KairosSettings, kinds: Sequence[str], limit: int, as_json: bool) -> None:
    """The most recent alerts, newest first."""
    wanted = alert_kinds(kinds)
    emit(lookup(settings, lambda queries: queries.alerts(wanted, None, limit)), as_json, alerts_table)


def follow_alerts(settings: KairosSettings, kinds: Sequence[str], limit: int, as_json: bool, count: int = 0) -> None:
    """The last ``limit`` alerts, oldest first, then each new one as it is raised (XREAD BLOCK).

    Runs until Ctrl-C, or until ``count`` new alerts were printed when
    ``count`` > 0. With ``as_json``, one JSON object per line.
    """
    console = Console(markup=False)
    kinds = alert_kinds(kinds)

    def show(alert: Alert) -> None:
        if as_json:
            sys.stdout.write(alert.model_dump_json() + "\n")
            sys.stdout.flush()
        else:
            console.print(alert_line(alert), soft_wrap=True)

    async def follow(queries: ServingQueries) -> None:
        last_id = await queries.last_alert_id()
        recent = (await queries.alerts(kinds, None, limit)).alerts
        for alert in reversed(recent):
            if stream_position(alert.id) <= stream_position(last_id):
                show(alert)
        shown = 0
        while not count or shown < count:
            last_id, alerts = await queries.alerts_after(last_id, STREAM_BLOCK_MS, kinds)
            for alert in alerts[: count - shown if count else None]:
                show(alert)
                shown += 1

    if not as_json:
        console.print(Text("following alerts (Ctrl-C to stop)", style="dim"))
    try:
        lookup(settings, follow, socket_timeout=STREAM_BLOCK_MS / 1000 + LOOKUP_TIMEOUT_SECONDS)
    except KeyboardInterrupt:
        if not as_json:
            console.print(Text("stopped", style="dim"))


# Forecasts.


def error_summary(forecast: Forecast) -> str:
    """How good the forecast has been: MAE against the seasonal-naive forecast's."""
    if forecast.mae is None:
        return "no error measured yet"
    text = f"MAE {figure(forecast.mae, 2)} units vs seasonal-naive {figure(forecast.naive_mae, 2)}"
    if forecast.mae_ratio is not None:
        verdict = "better" if forecast.mae_ratio < 1 else "not better"
        text += f" (ratio {forecast.mae_ratio:.2f}: {verdict} than naive)"
    if forecast.smape is not None:
        text += f", sMAPE {forecast.smape:.1f}%"
    return text


def forecasts_table(listing: ForecastList) -> Group:
    """Every series of a scope: next window's forecast with interval, last actuals, error vs seasonal-naive."""
    table = columns((listing.scope, "left"), ("next window", "left"), ("forecast [interval]", "right"),
                    ("last", "right"), ("MAE / naive", "right"), ("ratio", "right"))
    for forecast in listing.forecasts:
        ratio = forecast.mae_ratio
        table.add_row(
            forecast.key, utc(forecast.next_window_start, LISTED_WINDOW),
            f"{figure(forecast.forecast_units)} {interval(forecast.lower_units, forecast.upper_units)}",
            figure(forecast.last_units), f"{figure(forecast.mae, 2)} / {figure(forecast.naive_mae, 2)}",
            Text(figure(ratio, 2), style="green" if ratio is not None and ratio < 1 else ""),
        )
    return titled(table, f"{len(listing.forecasts)} {listing.scope} forecasts (units, times UTC)",
                  None if listing.forecasts else "no series forecast yet")


def forecast_view(forecast: Forecast) -> Group:
    """One series: the next windows with intervals, the recent actuals, the error."""
    size = f"{forecast.window_size / 3600:g} h windows" if forecast.window_size else "windows"
    ahead = columns(("next window", "left"), ("units", "right"), ("interval", "right"), ("revenue", "right"),
                    ("interval", "right"))
    for step in forecast.horizon:
        ahead.add_row(utc(step.window_start, WINDOW), figure(step.units),
                      interval(step.units_lower, step.units_upper), figure(step.revenue, 2),
                      interval(step.revenue_lower, step.revenue_upper))
    actuals = columns(("window", "left"), ("units", "right"), ("revenue", "right"))
    for window in forecast.actuals:
        actuals.add_row(utc(window.window_start, WINDOW), figure(window.units), figure(window.revenue, 2))
    heading = f"{forecast.scope} {forecast.key} · {size} · basis {forecast.basis or '-'} · times UTC"
    return Group(titled(ahead, heading, error_summary(forecast)), titled(actuals, "last actuals"))


def show_forecast(settings: KairosSettings, series: tuple[str, str] | None, as_json: bool) -> None:
    """One series (``(scope, key)``, e.g. :data:`TOTAL_SERIES`) in detail, or every category's forecast."""
    if series is None:
        emit(lookup(settings, lambda queries: queries.forecasts("category")), as_json, forecasts_table)
        return
    scope, key = series

    async def one(queries: ServingQueries) -> Forecast:
        forecast = await queries.forecast(scope, key)
        if forecast is not None:
            return forecast
        known = [f.key for f in (await queries.forecasts(scope)).forecasts]
        listed = ", ".join(known[:KNOWN_KEYS_SHOWN]) + (", ..." if len(known) > KNOWN_KEYS_SHOWN else "")
        raise not_found(f"no forecast for {scope} {key!r}; "
                        + (f"forecast {scope} series: {listed}" if known else f"no {scope} series is forecast yet"))

    emit(lookup(settings, one), as_json, forecast_view)


# Stock-out risk.


def stock_table(listing: StockRiskList) -> Group:
    """SKUs by expected hours until stock-out: on hand, hours (expected, latest), alert."""
    table = columns(("sku", "left"), ("on hand", "right"), ("as of (UTC)", "left"), ("stock-out in h", "right"),
                    ("latest h", "right"), ("expected at (UTC)", "left"), ("restock alert", "left"))
    for stock in listing.skus:
        latest = stock.hours_to_stockout_latest
        alerted = stock.alerted_at is not None
        table.add_row(stock.sku, figure(stock.on_hand, 0), utc(stock.as_of, LISTED_WINDOW),
                      figure(stock.hours_to_stockout), figure(latest),
                      utc(stock.stockout_at, LISTED_WINDOW) if stock.stockout_at is not None else "-",
                      Text(f"since {utc(stock.alerted_at, LISTED_WINDOW)}" if alerted else "-",
                           style="magenta" if alerted else ""))
    return titled(table, f"{len(listing.skus)} SKUs by hours until stock-out (event time)",
                  None if listing.skus else "no SKU with inventory counts and a stock-out in sight yet")


def stock_view(stock: StockRisk) -> Group:
    """One SKU's stock view."""
    return stock_table(StockRiskList(skus=[stock]))


def show_stock(settings: KairosSettings, sku: str | None, limit: int, as_json: bool) -> None:
    """One SKU's stock-out risk, or the SKUs expected to run out soonest."""
    if sku is None:
        emit(lookup(settings, lambda queries: queries.stock_risks(limit)), as_json, stock_table)
        return

    async def one(queries: ServingQueries) -> StockRisk:
        return found(await queries.stock(sku), f"no inventory counts for SKU {sku!r}")

    emit(lookup(settings, one), as_json, stock_view)


# Conversion propensity.


def propensity_view(model: PropensityModel) -> Group:
    """The conversion model: sessions learned, progressive AUC, its top rules."""
    table = columns(("rule (tree leaf)", "left"), ("converts", "right"), ("sessions", "right"))
    for rule in model.rules:
        table.add_row(rule.rule, f"{rule.converts:.0%}", f"{rule.sessions:,}")
    auc = "-" if model.roc_auc is None else f"{model.roc_auc:.3f}"
    return titled(table, f"conversion model: {model.learned:,} sessions learned, {model.converted:,} converted, "
                         f"live ROC AUC {auc} (last {model.window or 0:,})",
                  None if model.rules else "no rule yet: the tree has not split (it waits for enough sessions)")


def session_view(session: SessionPropensity) -> Group:
    """One session: status, probability of ending in an order, cart."""
    table = columns(("session", "left"), ("customer", "left"), ("status", "left"), ("propensity", "right"),
                    ("clicks", "right"), ("cart items", "right"), ("cart value", "right"),
                    ("last click (UTC)", "left"))
    table.add_row(session.session_id, session.customer_id or "-", session.status,
                  "-" if session.propensity is None else f"{session.propensity:.0%}", figure(session.clicks, 0),
                  figure(session.cart_items, 0), figure(session.cart_value), utc(session.last_click))
    return titled(table, "session")


def show_propensity(settings: KairosSettings, session_id: str | None, customer_id: str | None,
                    as_json: bool) -> None:
    """A session's (or a customer's latest session's) propensity, or the model and its rules."""
    if session_id is None and customer_id is None:
        emit(lookup(settings, lambda queries: queries.propensity_model()), as_json, propensity_view)
        return

    async def one(queries: ServingQueries) -> SessionPropensity:
        if session_id is not None:
            return found(await queries.session(session_id), f"no session {session_id!r}")
        return found(await queries.customer_session(customer_id), f"no session of customer {customer_id!r}")

    emit(lookup(settings, one), as_json, session_view)


# Analyst risk rules.


def risk_rules_table(listing: RiskRuleList) -> Group:
    """Every analyst rule: state, action, expression, description, the workers' rejection if any."""
    table = columns(*((name, "left") for name in ("id", "state", "action", "expression", "description")))
    for rule in listing.rules:
        state = Text("rejected: " + rule.rejected, style="red") if rule.rejected else (
            Text("active", style="green") if rule.enabled else Text("paused", style="yellow"))
        table.add_row(rule.id, state, str(rule.action), rule.expression, rule.description)
    return titled(table, f"{len(listing.rules)} risk rules",
                  None if listing.rules else "no analyst rule yet: kairos rules add ID EXPRESSION")


def show_risk_rules(settings: KairosSettings, as_json: bool) -> None:
    """Every analyst rule."""
    emit(lookup(settings, lambda queries: queries.risk_rules()), as_json, risk_rules_table)


def rule_action(text: str) -> str | float:
    """``review``, ``block`` or a score floor such as ``0.9`` (validated with the rule).

    >>> rule_action("review"), rule_action("0.9")
    ('review', 0.9)
    """
    try:
        return float(text)
    except ValueError:
        return text


def add_risk_rule(settings: KairosSettings, rule_id: str, expression: str, action: str, description: str) -> str:
    """Validate and store a rule (as ``PUT /risk/rules/{id}`` does); say whether it was added or replaced."""
    try:
        body = RiskRuleBody(expression=expression, action=rule_action(action), description=description)
    except ValidationError:
        raise ApiError(422, "invalid_rule", f"rule {rule_id!r} rejected: action must be review, block or a score "
                                            f"floor in (0, 1], not {action!r}") from None
    rule = validated_rule(rule_id, body)
    added = lookup(settings, lambda queries: queries.put_risk_rule(rule_id, rule))
    return f"{'added' if added else 'replaced'} risk rule {rule_id}: {expression} -> {rule.action}"


def set_risk_rule_enabled(settings: KairosSettings, rule_id: str, enabled: bool) -> str:
    """Pause or resume a rule; say what it is now."""
    rule: RiskRuleView = found(lookup(settings, lambda queries: queries.set_risk_rule_enabled(rule_id, enabled)),
                               f"no risk rule {rule_id!r}")
    return f"{'resumed' if rule.enabled else 'paused'} risk rule {rule_id}: {rule.expression}"


def delete_risk_rule(settings: KairosSettings, rule_id: str) -> str:
    """Delete a rule."""
    if not lookup(settings, lambda queries: queries.delete_risk_rule(rule_id)):
        raise not_found(f"no risk rule {rule_id!r}")
    return f"deleted risk rule {rule_id}"


def forget_customer(settings: KairosSettings, customer_id: str, wait: float) -> bool:
    """Request a customer's erasure; whether a worker applied it within ``wait`` seconds."""

    async def run(queries: ServingQueries) -> bool:
        await queries.request_erasure(customer_id)
        deadline = time.monotonic() + wait
        while wait > 0 and time.monotonic() < deadline:
            if not await queries.erasure_pending(customer_id):
                return True
            await asyncio.sleep(0.2)
        return False

    return lookup(settings, run)
