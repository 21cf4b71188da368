"""End to end: headless Chromium opens the dashboard of a real API over Redis and watches it live.

The page loads, asks for the API key, draws its charts from the views, and a
planted alert (XADD, as a worker raises it) appears in the feed without a
reload. A screenshot is saved in the test's tmp dir (its path is printed).
"""

from __future__ import annotations

from uuid import uuid4

from streams.serving.sample import write_alert
from tests.serving.browser import HeadlessChromium
from tests.serving.conftest import API_KEY


def test_the_dashboard_draws_the_shop_and_shows_a_new_alert_without_reload(live_server, shop, tmp_path) -> None:
    with HeadlessChromium(tmp_path) as browser:
        browser.navigate(f"{live_server.url}/")
        browser.wait_for("document.getElementById('key-dialog').open", 10, "the API key dialog")
        browser.evaluate(f"document.getElementById('key-input').value = {API_KEY!r};"
                         "document.querySelector('#key-dialog form').requestSubmit(); true")
        browser.wait_for("document.getElementById('health').textContent === 'live'", 10, "the live status")
        browser.evaluate("window.kairosPageMarker = 'same page'")

        bars = browser.evaluate("[...document.querySelectorAll('#segment-chart rect.bar')].map(b => +b.dataset.size)")
        charts = browser.evaluate("document.querySelectorAll('#forecast-grid .multiple svg').length")
        points = browser.evaluate("document.querySelectorAll('#forecast-grid circle.actual-point').length")
        bands = browser.evaluate("document.querySelectorAll('#forecast-grid path.band').length")
        rules = browser.evaluate("document.querySelectorAll('#rule-table tbody tr').length")
        scopes = browser.evaluate("[...document.querySelectorAll('#anomaly-table tbody tr')]"
                                  ".map(tr => [tr.className, tr.cells[0].textContent, tr.cells[4].textContent])")
        converts = browser.evaluate("[...document.querySelectorAll('#propensity-table tbody tr')]"
                                    ".map(tr => [...tr.cells].map(td => td.textContent))")
        summary = browser.evaluate("document.getElementById('propensity-summary').textContent")
        topics = browser.evaluate("[...document.querySelectorAll('#topics tbody tr td:first-child')].map(td => td.textContent)")
        profiles = browser.evaluate("[...document.querySelectorAll('#segment-cards h3')].map(h => h.textContent)")
        browser.wait_for("document.querySelectorAll('#alert-feed li.alert').length === 3", 10, "the recent alerts")

        subject = f"pay-{uuid4().hex[:8]}"
        write_alert(shop.redis, shop.keys, "risk", subject, 0.97, ["card not seen before", "5 payments in a minute"])
        newest = browser.wait_for(
            f"(() => {{ const li = document.querySelector('#alert-feed li.alert');"
            f" return li && li.textContent.includes({subject!r}) && li.textContent; }})()", 8, "the planted alert")
        same_page = browser.evaluate("window.kairosPageMarker")
        screenshot = browser.screenshot(tmp_path / "dashboard.png")
        print(f"dashboard screenshot: {screenshot}")
        errors = browser.exceptions

    assert bars == [340, 120, 80]
    assert profiles == ["occasional browsers", "loyal big spenders", "new customers"]
    assert (charts, points, bands) == (3, 18, 3)
    assert rules == 5
    assert scopes == [["anomalous", "all:all", "0.0% / 21.0%"], ["", "method:card", "–"]]
    assert converts == [["last_action = add_to_cart and cart_items ≥ 3", "97.0%", "640"],
                        ["last_action = view", "1.0%", "2,284"]], converts
    assert "5,210 sessions learned" in summary and "0.912" in summary, summary
    assert topics == ["clicks", "orders", "payments", "labels"]
    assert "5 payments in a minute" in newest and same_page == "same page"
    assert screenshot.stat().st_size > 10_000
    assert errors == []
