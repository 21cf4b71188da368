"""End to end: headless Chromium watches the dashboard of the real ``kairos demo``.

Nothing is written into Redis by the test: ``python -m streams.cli demo`` starts
the embedded Tansu broker, a redis-server, a worker, the lookup API and the
simulated shop in a work folder under the test's tmp dir. The page must load
(no API key dialog: the demo's API runs without a key), draw segment bars and
forecast charts and the stock-out risk table from what the worker computed, and report the pipeline live.
Then an analyst rule is added with ``kairos rules add``, and once the worker
has loaded it one payment that breaks it is sent to the demo's ``payments``
topic: its risk alert must appear in the feed of the same page (a marker set on
``window`` before survives, so there was no reload). A screenshot is saved in
the test's tmp dir (its path is printed).

The demo is stopped with SIGINT (SIGKILL after a grace period) however the test
ends, and every process it started must be gone afterwards.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from kafka import KafkaProducer

from tests.serving.browser import HeadlessChromium

pytestmark = pytest.mark.integration

# A small, fast shop: about 7.5k events, all sent within seconds.
DEMO_ARGS = ["--rate", "1500", "--customers", "300", "--days", "2", "--seed", "7"]
#: The demo stops itself after this long even if this test process dies without its teardown.
DEMO_DURATION_S = 300
STARTUP_TIMEOUT_S = 45  # until the demo prints the dashboard address (broker, Redis, worker and API up)
DATA_TIMEOUT_S = 60  # from the page's load until every chart has data
RULE_TIMEOUT_S = 20  # until the worker reports the analyst rule active
ALERT_TIMEOUT_S = 20  # from the payment's send until its alert is in the feed
STOP_GRACE_S = 40  # SIGINT to SIGKILL

DASHBOARD_LINE = re.compile(r"dashboard:\s+(http://127\.0\.0\.1:\d+/)")
STACK_LINE = re.compile(r"broker (127\.0\.0\.1:\d+), Redis (redis://127\.0\.0\.1:\d+/\d+)")


# ---- processes (read from /proc: the demo's children run in sessions of their own) ----

def proc_stat(pid: int) -> tuple[int, int, int] | None:
    """``(ppid, pgid, starttime)`` of a live process, or ``None`` when it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[2]), int(fields[19])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> dict[int, tuple[int, str]]:
    """Every live descendant of ``root``: pid -> (start time, command line)."""
    stats = {pid: stat for pid in all_pids() if (stat := proc_stat(pid)) is not None}
    found: dict[int, tuple[int, str]] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, start) in stats.items():
            if ppid == parent and pid not in found:
                found[pid] = (start, cmdline(pid))
                frontier.append(pid)
    return found


def still_running(processes: dict[int, tuple[int, str]]) -> dict[int, str]:
    """Those of ``processes`` that still run (same pid and same start time: not a reused pid)."""
    return {pid: command for pid, (start, command) in processes.items()
            if (stat := proc_stat(pid)) is not None and stat[2] == start}


def group_members(pgid: int) -> list[int]:
    return [pid for pid in all_pids() if (stat := proc_stat(pid)) is not None and stat[1] == pgid]


# ---- the demo -----------------------------------------------------------------

@dataclass
class Demo:
    """A running ``kairos demo`` and what it printed."""

    process: subprocess.Popen
    workdir: Path
    output_path: Path
    dashboard: str = ""
    broker: str = ""
    redis_url: str = ""
    seen: dict[int, tuple[int, str]] = field(default_factory=dict)

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def logs(self, tail: int = 3000) -> str:
        """The demo's own output and the tail of every log in its work folder, for failure messages."""
        parts = [f"--- demo output ({self.output_path}) ---\n{self.output()[-tail:]}"]
        for log in sorted(self.workdir.glob("*.log")):
            parts.append(f"--- {log} ---\n{log.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def remember_children(self) -> dict[int, tuple[int, str]]:
        """Record the demo's current descendants (to check they are all gone in the end)."""
        if self.process.poll() is None:
            self.seen.update(descendants(self.process.pid))
        return self.seen

    def check_running(self) -> None:
        """Fail (with the logs) if the demo or its worker is gone."""
        if self.process.poll() is not None:
            raise AssertionError(f"the demo exited with code {self.process.returncode}\n{self.logs()}")
        children = self.remember_children()
        if self.dashboard and not any("streams.cli worker" in command
                                      for command in still_running(children).values()):
            raise AssertionError(f"the demo's worker is not running\n{self.logs()}")

    def api(self, path: str) -> Any:
        """One JSON answer of the demo's lookup API (``None`` if it did not answer: callers poll)."""
        try:
            with urllib.request.urlopen(f"{self.dashboard}api/v1/{path}", timeout=5) as answer:
                return json.load(answer)
        except OSError:
            return None


def wait_until(condition: Callable[[], Any], timeout: float, what: str, demo: Demo, every: float = 0.25) -> Any:
    """Poll ``condition`` until truthy; fail early if the demo dies, with its logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        demo.check_running()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{demo.logs()}")
        time.sleep(every)


def stop_demo(demo: Demo) -> None:
    """SIGINT to the demo (it stops its children), SIGKILL after a grace period; then nothing may be left."""
    demo.remember_children()
    process = demo.process
    how = f"exited by itself with code {process.poll()}" if process.poll() is not None else "stopped by SIGINT"
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)  # its own session: the group is the demo alone
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            how = f"killed: it did not stop within {STOP_GRACE_S} s of SIGINT"
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    deadline = time.monotonic() + 5
    while still_running(demo.seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = still_running(demo.seen)
    for pid in leftovers:  # only processes the demo started (same pid and start time)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, f"the demo ({how}) left processes behind (now killed): {leftovers}\n{demo.logs()}"


def demo_env(workdir: Path) -> dict[str, str]:
    """The test's environment without any KAIROS_* setting (the demo chooses its own), output unbuffered."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAIROS_")}
    env.update(KAIROS_DEMO_DIR=str(workdir), PYTHONUNBUFFERED="1", COLUMNS="200", TERM="dumb")
    return env


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """``python -m streams.cli demo`` running in the test's tmp dir (logs in ``.kairos/demo``)."""
    workdir = tmp_path / ".kairos" / "demo"
    output_path = tmp_path / "demo-output.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "demo", *DEMO_ARGS, "--duration", str(DEMO_DURATION_S)],
        cwd=tmp_path, env=demo_env(workdir), stdout=output_path.open("wb"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    running = Demo(process, workdir, output_path)
    try:
        dashboard = wait_until(lambda: DASHBOARD_LINE.search(running.output()), STARTUP_TIMEOUT_S,
                               "the demo to print its dashboard address", running)
        stack = STACK_LINE.search(running.output())
        assert stack, f"the demo did not print its broker and Redis\n{running.logs()}"
        running.dashboard, running.broker, running.redis_url = dashboard[1], stack[1], stack[2]
        running.check_running()
        yield running
    finally:
        stop_demo(running)


# ---- the test -------------------------------------------------------------------

def add_rule(demo: Demo, rule_id: str, expression: str, description: str) -> str:
    """``kairos rules add`` against the demo's Redis, as an analyst would."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAIROS_")}
    env["KAIROS_REDIS_URL"] = demo.redis_url
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "rules", "add", rule_id, expression, "--action", "block",
         "--description", description], env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, f"kairos rules add failed: {done.stdout}{done.stderr}"
    return done.stdout


def send_payment(demo: Demo, payment_id: str, customer_id: str, amount: float) -> None:
    """One payment on the demo's payments topic, in the public wire format (keyed by customer id)."""
    payment = {
        "event_id": f"ev-{payment_id}", "payment_id": payment_id, "order_id": f"ord-{payment_id}",
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "customer_id": customer_id, "amount": amount, "currency": "EUR", "method": "card",
        "card_fingerprint": f"card-{payment_id}", "device_id": f"dev-{payment_id}",
        "ip_country": "DE", "billing_country": "DE", "status": "captured",
    }
    producer = KafkaProducer(bootstrap_servers=demo.broker, acks="all", request_timeout_ms=15_000)
    try:
        producer.send("payments", json.dumps(payment).encode(), key=customer_id.encode()).get(timeout=15)
    finally:
        producer.close(timeout=5)


def test_the_demo_dashboard_shows_live_data_and_a_new_risk_alert_without_reload(demo: Demo, tmp_path: Path) -> None:
    started = time.monotonic()
    tag = uuid4().hex[:8]
    rule_id, payment_id, customer_id = f"e2e-big-{tag}", f"pay-e2e-{tag}", f"cust-e2e-{tag}"
    description = f"end-to-end check {tag}"
    # The analyst's rule goes in first: the worker reloads the rules every sync period meanwhile.
    added = add_rule(demo, rule_id, "amount > 40000", description)
    assert rule_id in added, added

    (tmp_path / "chromium").mkdir()
    with HeadlessChromium(tmp_path / "chromium") as browser:
        browser.navigate(demo.dashboard, timeout=20)
        browser.evaluate("window.kairosPageMarker = 'same page'; true")
        data_deadline = time.monotonic() + DATA_TIMEOUT_S

        def page_shows(expression: str, what: str) -> Any:
            return wait_until(lambda: browser.evaluate(expression), data_deadline - time.monotonic(), what, demo)

        # What the worker computed from the simulated shop, drawn by the page.
        page_shows("document.getElementById('health').textContent === 'live'", "the pipeline status 'live'")
        key_dialog_open = browser.evaluate("document.getElementById('key-dialog').open")
        bars = page_shows(
            "(() => { const sizes = [...document.querySelectorAll('#segment-chart rect.bar')]"
            ".map(b => +b.dataset.size); return sizes.length > 0 && sizes.every(s => s > 0) && sizes; })()",
            "segment bars with customers")
        points = page_shows(
            "Math.max(0, ...[...document.querySelectorAll('#forecast-grid .multiple svg')]"
            ".map(svg => svg.querySelectorAll('circle.actual-point').length))",
            "a forecast chart with actual points")
        processed = page_shows(
            "[...document.querySelectorAll('#topics tbody tr')].reduce((sum, tr) =>"
            " sum + Number(tr.children[1].textContent.replace(/\\D/g, '')), 0)",
            "processed events in the topic table")
        rules = page_shows("document.querySelectorAll('#rule-table tbody tr td.num').length / 2",
                           "basket rules in the rule table")
        stock = page_shows("[...document.querySelectorAll('#stock-table tbody tr')]"
                           ".filter(tr => /\\d/.test(tr.children[2]?.textContent || '')).length",
                           "SKUs with hours until stock-out in the stock table")
        minutes = page_shows("[...document.querySelectorAll('#anomaly-table tbody tr')]"
                             ".filter(tr => /\\d/.test(tr.children[1]?.textContent || '')).length",
                             "traffic scopes with a closed minute in the anomaly table")
        sessions = page_shows("Number((document.getElementById('propensity-summary').textContent"
                              ".match(/([\\d,]+) sessions learned/) || ['', '0'])[1].replace(/,/g, ''))",
                              "sessions learned in the conversion panel")
        data_shown = time.monotonic()

        # The rule is live once the worker reports it among its active rules.
        wait_until(lambda: ((demo.api("metrics") or {}).get("models", {}).get("risk", {}).get("rules_active", 0)
                            >= 1), RULE_TIMEOUT_S, f"the worker to load rule {rule_id}", demo, every=0.5)
        send_payment(demo, payment_id, customer_id, 50_000.0)
        sent = time.monotonic()
        alert = wait_until(lambda: browser.evaluate(
            f"(() => {{ const li = [...document.querySelectorAll('#alert-feed li.alert')]"
            f".find(li => li.textContent.includes({payment_id!r}));"
            f" return li && {{kind: li.dataset.kind, subject: li.querySelector('.subject').textContent,"
            f" fresh: li.classList.contains('fresh'), text: li.textContent}}; }})()"),
            ALERT_TIMEOUT_S, f"the alert of payment {payment_id} in the feed", demo)
        alerted = time.monotonic()
        same_page = browser.evaluate("window.kairosPageMarker")
        health = browser.evaluate("document.getElementById('health').textContent")
        screenshot = browser.screenshot(tmp_path / "demo-dashboard.png")
        print(f"demo dashboard screenshot: {screenshot}")
        print(f"data on the page after {data_shown - started:.1f} s, alert {alerted - sent:.1f} s after the payment")
        errors = list(browser.exceptions)
        chromium_group = browser.process.pid

    assert not key_dialog_open, "the demo's API runs without a key: the page must not ask for one"
    assert bars and all(size > 0 for size in bars), bars
    assert points >= 1 and processed > 0 and rules >= 1 and stock >= 1 and minutes >= 1 and sessions >= 1, (
        points, processed, rules, stock, minutes, sessions)
    assert alert["kind"] == "risk" and alert["subject"] == payment_id, alert
    assert f"rule {rule_id}: {description}" in alert["text"], alert
    assert alert["fresh"], f"the alert was not streamed into the open page: {alert}"
    assert same_page == "same page", "the page was reloaded"
    assert health == "live"
    assert screenshot.stat().st_size > 10_000
    assert errors == [], errors
    deadline = time.monotonic() + 5
    while group_members(chromium_group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_members(chromium_group), "Chromium left processes behind"
