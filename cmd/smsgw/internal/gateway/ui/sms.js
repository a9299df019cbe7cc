// smsgw web UI: SMS spend per UTC day and per device against the daily
// budgets (GET /api/v1/sms/spend), and the wake-up latency of sleeping
// devices (GET /api/v1/wakeups) as a histogram chart and the last
// wake-ups. Uses el and api of app.js; app.js calls loadSMS.
"use strict";

let smsDay = ""; // the day whose devices are shown ("" = the newest)

function budgetText(b) { return b < 0 ? "unlimited" : b === 0 ? "no SMS" : `${b} a day`; }

// budgetCell shows used against a daily budget: a bar and "used / budget",
// marked from 80 % (sms.budget_warn's default) and when exhausted.
function budgetCell(used, budget) {
  if (used === undefined || used === null) return el("td", {}, "");
  if (budget < 0) return el("td", {}, `${used} (unlimited)`);
  const full = budget === 0 ? used > 0 : used >= budget;
  const cls = full ? "err" : used >= 0.8 * budget ? "warn" : "";
  return el("td", { class: "budget " + cls }, el("meter", { min: 0, max: Math.max(budget, 1), value: Math.min(used, Math.max(budget, 1)) }),
    ` ${used} / ${budget}` + (full ? " exhausted" : ""));
}

async function loadSMS() {
  const [{ body: sp }, { body: wk }] = await Promise.all([api("GET", "/sms/spend?days=14"), api("GET", "/wakeups")]);
  renderSpend(sp);
  renderWakeups(wk);
}

function renderSpend(sp) {
  document.getElementById("sms-budgets").textContent =
    `daily budgets (UTC days): ${budgetText(sp.budget_per_device)} per device, ${budgetText(sp.budget_per_day)} for the deployment`;
  const tb = document.querySelector("#sms-days tbody");
  tb.replaceChildren();
  if (!sp.days.length) tb.append(el("tr", {}, el("td", { colspan: 5 }, "no SMS sent or received yet")));
  if (!sp.days.some(d => d.day === smsDay)) smsDay = sp.days.length ? sp.days[0].day : "";
  for (const d of sp.days) {
    const used = d.budget_used !== undefined ? d.budget_used : d.sent_segments;
    tb.append(el("tr", { "data-day": d.day, class: d.day === smsDay ? "sel" : "" },
      el("td", {}, el("a", { onclick: () => { smsDay = d.day; renderSpend(sp); } }, d.day)),
      el("td", { class: "count" }, d.sent_segments), el("td", { class: "count" }, d.received_segments),
      budgetCell(used, sp.budget_per_day), el("td", { class: "count" }, d.devices.length)));
  }
  const day = sp.days.find(d => d.day === smsDay);
  document.getElementById("sms-day").textContent = smsDay || "";
  const dt = document.querySelector("#sms-devices tbody");
  dt.replaceChildren();
  if (!day) { dt.append(el("tr", {}, el("td", { colspan: 5 }, "no SMS on this day"))); return; }
  for (const v of day.devices) {
    const used = v.budget_used !== undefined ? v.budget_used : v.sent_segments;
    dt.append(el("tr", { "data-number": v.number, "data-endpoint": v.endpoint || "" },
      el("td", {}, v.endpoint ? el("a", { onclick: () => selectDevice(v.endpoint) }, v.endpoint) : "(unknown number)"),
      el("td", {}, v.number), el("td", { class: "count" }, v.sent_segments), el("td", { class: "count" }, v.received_segments),
      budgetCell(used, sp.budget_per_device)));
  }
}

function fmtSeconds(s) {
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 90) return (s < 10 ? s.toFixed(1) : Math.round(s)) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function bucketLabel(b, prev) {
  if (!b.le) return `> ${fmtSeconds(prev)}`;
  return `≤ ${fmtSeconds(b.le)}`;
}

// renderWakeups draws the histogram of wake-up latencies (every wake-up
// since the gateway started) as SVG bars, and lists the last ones.
function renderWakeups(wk) {
  const summary = wk.count
    ? `${wk.count} measured since start; last ${wk.recent.length}: median ${fmtSeconds(wk.p50_seconds)}, 90 % within ${fmtSeconds(wk.p90_seconds)}, slowest ${fmtSeconds(wk.max_seconds)}`
    : "no wake-up measured yet (from the first SMS trigger to the device showing up)";
  document.getElementById("wake-summary").textContent = summary + (wk.waking ? `; ${wk.waking} being woken now` : "");
  const box = document.getElementById("wake-chart");
  const ns = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const bw = 56, h = 120, top = 16, bottom = 20;
  const peak = Math.max(1, ...wk.buckets.map(b => b.count));
  const chart = svg("svg", { width: bw * wk.buckets.length, height: h + top + bottom, role: "img", "aria-label": "wake-up latency histogram" });
  wk.buckets.forEach((b, i) => {
    const bh = Math.round(h * b.count / peak);
    const x = i * bw;
    const g = svg("g", { class: "bucket", "data-le": b.le || "inf" });
    g.append(svg("rect", { x: x + 6, y: top + h - bh, width: bw - 12, height: bh, class: "bar" }));
    g.append(svg("text", { x: x + bw / 2, y: top + h - bh - 3, "text-anchor": "middle", class: "n" }, String(b.count)));
    g.append(svg("text", { x: x + bw / 2, y: top + h + 14, "text-anchor": "middle", class: "le" }, bucketLabel(b, i ? wk.buckets[i - 1].le : 0)));
    chart.append(g);
  });
  box.replaceChildren(chart);
  const tb = document.querySelector("#wake-recent tbody");
  tb.replaceChildren();
  if (!wk.recent.length) tb.append(el("tr", {}, el("td", { colspan: 4 }, "none yet")));
  for (const l of wk.recent.slice(0, 10)) {
    tb.append(el("tr", { "data-endpoint": l.endpoint }, el("td", {}, l.endpoint), el("td", {}, new Date(l.woken).toLocaleTimeString()),
      el("td", { class: "count" }, fmtSeconds(l.seconds)), el("td", { class: "count" }, l.triggers)));
  }
}
