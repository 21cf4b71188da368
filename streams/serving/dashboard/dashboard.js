// Kairos dashboard: polls the lookup API every 2 s, follows the alert stream live.
// Vanilla JavaScript and inline SVG only: nothing is loaded from anywhere but this API.
"use strict";

const API = "api/v1";
const POLL_MS = 2000;
const MAX_ALERTS = 200;
const PALETTE = ["#38bdf8", "#a78bfa", "#34d399", "#fbbf24", "#f87171", "#f472b6", "#22d3ee", "#c084fc", "#4ade80", "#fb923c"];
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  apiKey: sessionStorage.getItem("kairos-api-key") || "",
  rates: [],            // events/s samples for the sparkline
  lastCount: null,      // {processed, at} of the previous metrics poll
  alerts: [],           // newest first
  lastAlertId: null,
  kindFilter: "",
};

const $ = (id) => document.getElementById(id);
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (n, digits = 0) => Number(n).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (x) => `${(100 * x).toFixed(1)}%`;

// ---- API access -------------------------------------------------------------

function headers() {
  return state.apiKey ? { "X-API-Key": state.apiKey } : {};
}

async function api(path) {
  const sentKey = state.apiKey;
  const response = await fetch(`${API}/${path}`, { headers: headers() });
  if (response.status === 401) {
    if (sentKey === state.apiKey) askForKey();  // not an answer to a key replaced meanwhile
    throw new Error("unauthorized");
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function askForKey() {
  const dialog = $("key-dialog");
  if (dialog.open) return;
  dialog.showModal();
  dialog.addEventListener("close", () => {
    state.apiKey = $("key-input").value.trim();
    sessionStorage.setItem("kairos-api-key", state.apiKey);
    followAlerts();
  }, { once: true });
}

// ---- SVG helpers ------------------------------------------------------------

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  if (text !== undefined) el.textContent = text;
  return el;
}

function linePath(points) {
  return points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
}

// ---- Pipeline health ----------------------------------------------------------

function renderPipeline(metrics) {
  const topics = Object.entries(metrics.ingest);
  const processed = topics.reduce((sum, [, c]) => sum + c.processed, 0);
  const now = performance.now();
  if (state.lastCount && now > state.lastCount.at) {
    const rate = Math.max(0, (processed - state.lastCount.processed) / ((now - state.lastCount.at) / 1000));
    state.rates.push(rate);
    if (state.rates.length > 60) state.rates.shift();
    $("rate").textContent = fmt(rate);
  }
  state.lastCount = { processed, at: now };
  $("lag").textContent = fmt(metrics.lag);
  $("workers").textContent = fmt(metrics.workers.length);
  $("topics").querySelector("tbody").innerHTML = topics.map(([topic, c]) => `
    <tr><td>${esc(topic)}</td><td class="num">${fmt(c.processed)}</td>
    <td class="num ${c.invalid ? "bad" : ""}">${fmt(c.invalid)}</td><td class="num">${fmt(c.duplicate)}</td></tr>`).join("");
  $("model-metrics").innerHTML = Object.entries(metrics.models).map(([component, figures]) =>
    `<span>${esc(component)}: ${Object.entries(figures).slice(0, 6).map(([name, value]) =>
      `${esc(name)} <b>${fmt(value, Number.isInteger(value) || Math.abs(value) >= 10 ? 0 : 3)}</b>`).join(" · ")}</span>`).join("");
  renderSparkline();
}

function renderSparkline() {
  const svg = $("rate-spark");
  svg.replaceChildren();
  const rates = state.rates;
  if (rates.length < 2) return;
  const top = Math.max(...rates, 1);
  const points = rates.map((r, i) => [(i / (rates.length - 1)) * 240, 46 - (r / top) * 44]);
  svg.append(svgEl("path", { class: "area", d: `${linePath(points)}L240,48L0,48Z` }));
  svg.append(svgEl("path", { class: "trace", d: linePath(points) }));
}

// ---- Segments -----------------------------------------------------------------

function renderSegments(list) {
  const svg = $("segment-chart");
  const segments = list.segments;
  $("segment-total").textContent = `${fmt(list.customers)} customers`;
  const rowHeight = 26;
  const width = svg.clientWidth || 600;
  const labelWidth = Math.min(220, width * 0.35);
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(rowHeight, segments.length * rowHeight)}`);
  svg.setAttribute("height", Math.max(rowHeight, segments.length * rowHeight));
  svg.replaceChildren();
  const largest = Math.max(...segments.map((s) => s.size), 1);
  segments.forEach((s, i) => {
    const y = i * rowHeight;
    const barWidth = Math.max(2, ((width - labelWidth - 120) * s.size) / largest);
    const color = PALETTE[s.segment_id % PALETTE.length];
    svg.append(svgEl("text", { x: labelWidth - 8, y: y + 17, "text-anchor": "end" }, s.name));
    svg.append(svgEl("rect", { class: "bar", x: labelWidth, y: y + 5, width: barWidth, height: rowHeight - 10, rx: 3, fill: color, "data-size": s.size }));
    svg.append(svgEl("text", { class: "value", x: labelWidth + barWidth + 6, y: y + 17 }, `${fmt(s.size)} · ${pct(s.size / Math.max(list.customers, 1))}`));
  });
  $("segment-cards").innerHTML = segments.map((s) => `
    <div class="profile" style="border-left-color:${PALETTE[s.segment_id % PALETTE.length]}">
      <h3>${esc(s.name)}</h3><p>${esc(s.summary || "profile pending")}</p>
    </div>`).join("");
}

// ---- Forecasts ----------------------------------------------------------------

function renderForecasts(list) {
  const grid = $("forecast-grid");
  grid.replaceChildren();
  for (const f of list.forecasts) {
    const box = document.createElement("div");
    box.className = "multiple";
    const next = f.forecast_units === null ? "" : `next ${fmt(f.forecast_units, 1)} [${fmt(f.lower_units, 1)}–${fmt(f.upper_units, 1)}]`;
    box.innerHTML = `<h3><span>${esc(f.key)}</span><span class="muted">${next}</span></h3>`;
    box.append(forecastChart(f));
    grid.append(box);
  }
  if (!list.forecasts.length) grid.innerHTML = `<p class="muted">No forecasts yet: they appear once sales windows close.</p>`;
}

function forecastChart(f) {
  const W = 300, H = 130, pad = { l: 34, r: 8, t: 8, b: 18 };
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  const actual = f.actuals.map((a) => [a.window_start, a.units]);
  const ahead = f.horizon.map((h) => [h.window_start, h.units, h.units_lower, h.units_upper]);
  const times = [...actual.map((p) => p[0]), ...ahead.map((p) => p[0])];
  const values = [...actual.map((p) => p[1]), ...ahead.flatMap((p) => [p[1], p[2], p[3]])];
  if (times.length < 1) return svg;
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1);
  const top = Math.max(...values, 1) * 1.1, bottom = Math.min(0, ...values);
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - ((v - bottom) / (top - bottom)) * (H - pad.t - pad.b);
  svg.append(svgEl("line", { class: "axis", x1: pad.l, x2: W - pad.r, y1: y(bottom), y2: y(bottom) }));
  svg.append(svgEl("text", { x: 2, y: y(top / 1.1) + 4 }, fmt(top / 1.1)));
  svg.append(svgEl("text", { x: 2, y: y(bottom) }, fmt(bottom)));
  if (ahead.length) {
    const anchor = actual.length ? [actual[actual.length - 1]] : [];
    const upper = [...anchor.map(([t, v]) => [x(t), y(v)]), ...ahead.map(([t, , , u]) => [x(t), y(u)])];
    const lower = [...anchor.map(([t, v]) => [x(t), y(v)]), ...ahead.map(([t, , l]) => [x(t), y(l)])].reverse();
    svg.append(svgEl("path", { class: "band", d: `${linePath(upper)}${linePath(lower).replace("M", "L")}Z` }));
    svg.append(svgEl("path", { class: "forecast", d: linePath([...anchor, ...ahead].map(([t, v]) => [x(t), y(v)])) }));
    for (const [t, v] of ahead) svg.append(svgEl("circle", { class: "forecast-point", cx: x(t), cy: y(v), r: 2.5 }));
  }
  if (actual.length) {
    svg.append(svgEl("path", { class: "actual", d: linePath(actual.map(([t, v]) => [x(t), y(v)])) }));
    for (const [t, v] of actual) svg.append(svgEl("circle", { class: "actual-point", cx: x(t), cy: y(v), r: 2.5 }));
  }
  const hour = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  svg.append(svgEl("text", { x: pad.l, y: H - 4 }, hour(t0)));
  svg.append(svgEl("text", { x: W - pad.r, y: H - 4, "text-anchor": "end" }, hour(t1)));
  return svg;
}

// ---- Rules --------------------------------------------------------------------

function renderRules(list) {
  const top = Math.max(...list.rules.map((r) => r.lift), 1);
  $("rule-table").querySelector("tbody").innerHTML = list.rules.map((r) => `
    <tr><td>${r.antecedent.map(esc).join(" + ")}</td><td>${esc(r.consequent)}</td>
    <td class="num">${pct(r.support)}</td><td class="num">${pct(r.confidence)}</td>
    <td><span class="liftbar" style="width:${(60 * r.lift) / top}px"></span>${r.lift.toFixed(2)}</td></tr>`).join("")
    || `<tr><td colspan="5" class="muted">No rules yet.</td></tr>`;
}

// ---- Stock-out risk -------------------------------------------------------------

function renderStock(list) {
  const hours = (h) => (h === null || h === undefined ? "–" : fmt(h, 1));
  $("stock-table").querySelector("tbody").innerHTML = list.skus.map((s) => `
    <tr class="${s.alerted_at === null ? "" : "restocking"}"><td>${esc(s.sku)}</td><td class="num">${fmt(s.on_hand)}</td>
    <td class="num">${hours(s.hours_to_stockout)}</td><td class="num">${hours(s.hours_to_stockout_latest)}</td>
    <td>${s.alerted_at === null ? "" : `<span class="kind-restock">restock</span> since ${esc(new Date(s.alerted_at * 1000).toISOString().slice(5, 16).replace("T", " "))}`}</td></tr>`).join("")
    || `<tr><td colspan="5" class="muted">No stock-out in sight: the rows appear with inventory counts on the inventory topic.</td></tr>`;
}

// ---- Traffic anomalies ----------------------------------------------------------

function ratio(counts, num, den) {
  return counts[den] ? counts[num] / counts[den] : null;
}

function versus(value, usual, asShare) {
  if (value === null || value === undefined) return `<span class="muted">–</span>`;
  const shown = asShare ? pct(value) : fmt(value);
  const expected = usual === undefined ? "" : ` <span class="muted">/ ${asShare ? pct(usual) : fmt(usual, 1)}</span>`;
  return shown + expected;
}

function renderAnomalies(list) {
  $("anomaly-table").querySelector("tbody").innerHTML = list.scopes.map((s) => {
    const c = s.counts, u = s.usual;
    return `<tr class="${s.anomalous ? "anomalous" : ""}"><td>${esc(s.scope)}</td>
      <td>${s.minute ? esc(s.minute.slice(0, 16).replace("T", " ")) : ""}</td>
      <td class="num">${versus(c.views, u.views, false)}</td>
      <td class="num">${versus(ratio(c, "carts", "views"), u.add_to_cart_rate, true)}</td>
      <td class="num">${versus(ratio(c, "orders", "carts"), u.conversion_rate, true)}</td>
      <td class="num">${versus(ratio(c, "declined", "payments"), u.decline_rate, true)}</td>
      <td class="num">${versus(ratio(c, "dead", "events"), u.dead_letter_rate, true)}</td>
      <td><span class="liftbar" style="width:${Math.min(60, 8 * s.score)}px"></span>${s.score.toFixed(1)}</td></tr>`;
  }).join("") || `<tr><td colspan="8" class="muted">No traffic minutes yet: they appear as minutes of event time close.</td></tr>`;
}

// ---- Conversion propensity ------------------------------------------------------

function renderPropensity(model) {
  const auc = model.roc_auc === null ? "–" : model.roc_auc.toFixed(3);
  $("propensity-summary").textContent =
    `${fmt(model.learned)} sessions learned, ${fmt(model.converted)} converted · live ROC AUC ${auc} at each session's last click`;
  $("propensity-table").querySelector("tbody").innerHTML = model.rules.map((r) =>
    `<tr><td>${esc(r.rule)}</td><td class="num">${pct(r.converts)}</td><td class="num">${fmt(r.sessions)}</td></tr>`).join("")
    || `<tr><td colspan="3" class="muted">No rule yet: the tree splits once it has learned enough sessions.</td></tr>`;
}

// ---- Alerts -------------------------------------------------------------------

function alertItem(alert, fresh) {
  const li = document.createElement("li");
  li.className = `alert ${alert.kind}${fresh ? " fresh" : ""}`;
  li.dataset.id = alert.id;
  li.dataset.kind = alert.kind;
  li.hidden = Boolean(state.kindFilter) && alert.kind !== state.kindFilter;
  const when = new Date((alert.created_at || alert.ts || 0) * 1000).toLocaleTimeString();
  li.innerHTML = `
    <div class="head"><span class="kind">${esc(alert.kind)}</span><span class="subject">${esc(alert.subject)}</span>
    <span class="muted">${fmt(alert.score, 2)} · ${when}</span></div>
    <ul>${alert.reasons.map((r) => `<li>${esc(r)}</li>`).join("")}</ul>`;
  return li;
}

function addAlerts(alerts, fresh) {
  const feed = $("alert-feed");
  for (const alert of alerts) {
    if (feed.querySelector(`[data-id="${alert.id}"]`)) continue;
    feed.prepend(alertItem(alert, fresh));
    state.lastAlertId = alert.id;
  }
  while (feed.children.length > MAX_ALERTS) feed.lastElementChild.remove();
  $("alert-empty").hidden = feed.children.length > 0;
}

let alertStream = null;

async function followAlerts() {
  if (alertStream) alertStream.abort();
  alertStream = new AbortController();
  const signal = alertStream.signal;
  if (state.lastAlertId === null) {
    try {
      const recent = await api("alerts?limit=50");
      addAlerts(recent.alerts.slice().reverse(), false);
      state.lastAlertId = state.lastAlertId || "0-0";  // an empty stream: follow it from its start
    } catch (error) {
      if (error.message !== "unauthorized") setTimeout(followAlerts, POLL_MS);  // askForKey() restarts us otherwise
      return;
    }
  }
  // Server-sent events over fetch (EventSource cannot send the API key header).
  while (!signal.aborted) {
    try {
      const after = state.lastAlertId ? `?after=${encodeURIComponent(state.lastAlertId)}` : "";
      const sentKey = state.apiKey;
      const response = await fetch(`${API}/alerts/stream${after}`, { headers: headers(), signal });
      if (response.status === 401) {
        if (sentKey === state.apiKey) askForKey();
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function handleEvent(block) {
  const data = block.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
  if (data) addAlerts([JSON.parse(data)], true);
}

$("alert-filters").addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  state.kindFilter = button.dataset.kind;
  for (const b of $("alert-filters").children) b.classList.toggle("active", b === button);
  for (const li of $("alert-feed").children) li.hidden = Boolean(state.kindFilter) && li.dataset.kind !== state.kindFilter;
});

// ---- Polling ------------------------------------------------------------------

async function refresh() {
  const pill = $("health");
  try {
    const [metrics, segments, forecasts, rules, stock, anomalies, propensity] = await Promise.all([
      api("metrics"), api("segments"), api("forecasts?scope=category"), api("rules?limit=12"), api("stock?limit=10"),
      api("anomalies?limit=12"), api("propensity"),
    ]);
    renderPipeline(metrics);
    renderSegments(segments);
    renderForecasts(forecasts);
    renderRules(rules);
    renderStock(stock);
    renderAnomalies(anomalies);
    renderPropensity(propensity);
    pill.className = "pill pill-ok";
    pill.textContent = "live";
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    pill.className = "pill pill-bad";
    pill.textContent = "offline";
  }
}

refresh();
setInterval(refresh, POLL_MS);
followAlerts();
