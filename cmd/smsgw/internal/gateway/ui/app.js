// smsgw web UI: plain JS over the JSON API (no build step).
"use strict";
const params = new URLSearchParams(location.hash.slice(1));
let token = params.get("token") || localStorage.getItem("smsgw-token") || "";
let current = params.get("device") || "";
const objects = {}; // object definitions by id

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.onclick = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

async function api(method, path, body) {
  const opt = { method, headers: { "Authorization": "Bearer " + token } };
  if (body !== undefined) { opt.body = JSON.stringify(body); opt.headers["Content-Type"] = "application/json"; }
  const r = await fetch("/api/v1" + path, opt);
  const j = await r.json().catch(() => ({}));
  if (r.status === 401) { askToken(); throw new Error(j.error || "unauthorized"); }
  if (!r.ok && r.status !== 202) throw new Error(j.error || ("HTTP " + r.status));
  return { status: r.status, body: j };
}

function askToken() {
  document.getElementById("tokenform").hidden = false;
  document.getElementById("status").textContent = "enter the API token";
}

document.getElementById("tokenform").onsubmit = (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  localStorage.setItem("smsgw-token", token);
  document.getElementById("tokenform").hidden = true;
  refresh();
};

function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// The fleet is shown a page at a time (limit/cursor of the API): a city's
// fleet does not fit one answer, nor one screen.
const fleetLimit = Number(params.get("limit")) || 100;
let fleetCursors = [""]; // cursor of each page seen; the last is the current page's
let fleetNext = "";

async function loadFleet() {
  const cur = fleetCursors[fleetCursors.length - 1];
  const q = "?limit=" + fleetLimit + (cur ? "&cursor=" + encodeURIComponent(cur) : "");
  const { body } = await api("GET", "/devices" + q);
  const tb = document.querySelector("#fleet tbody");
  tb.replaceChildren();
  for (const d of body.devices) {
    const state = d.awake ? "awake" : "sleeping";
    const tr = el("tr", { "data-endpoint": d.endpoint, class: d.endpoint === current ? "sel" : "" },
      el("td", {}, el("a", { onclick: () => selectDevice(d.endpoint) }, d.endpoint)),
      el("td", {}, d.transport), el("td", {}, d.binding + (d.queue ? " (queue)" : "")),
      el("td", { class: "state-" + state }, state), el("td", {}, d.queued),
      el("td", {}, d.sms || ""), el("td", {}, new Date(d.updated).toLocaleTimeString()));
    if (d.node) tr.append(el("td", { class: "node" }, d.node));
    tb.append(tr);
  }
  fleetNext = body.next_cursor || "";
  const first = fleetCursors.length === 1;
  document.getElementById("fleet-prev").disabled = first;
  document.getElementById("fleet-next").disabled = !fleetNext;
  document.getElementById("fleet-page").textContent = (first && !fleetNext) ? "" :
    `page ${fleetCursors.length}: ${body.count} of ${body.total}`;
  document.getElementById("status").textContent = body.total + " devices registered";
}

function fleetPage(step) {
  if (step > 0 && fleetNext) fleetCursors.push(fleetNext);
  else if (step < 0 && fleetCursors.length > 1) fleetCursors.pop();
  loadFleet().catch((e) => note(`fleet: ${e.message}`, true));
}

async function loadModems() {
  const { body } = await api("GET", "/modems");
  const tb = document.querySelector("#modems tbody");
  tb.replaceChildren();
  for (const m of body.modems) {
    tb.append(el("tr", {}, el("td", {}, m.msisdn), el("td", {}, (m.manufacturer || "") + " " + (m.model || m.profile)),
      el("td", {}, m.ready ? "ready" : "not ready"),
      el("td", {}, m.signal_dbm !== undefined ? m.signal_dbm + " dBm" : "rssi " + m.signal_rssi),
      el("td", {}, m.sent), el("td", {}, m.received), el("td", {}, m.send_errors), el("td", {}, m.pty || m.name)));
  }
}

// loadCluster shows the nodes of a cluster (store: redis://...): each
// node's state, the devices and modems it holds, and the leases; hidden on
// a single gateway (GET /cluster answers 404).
async function loadCluster() {
  const r = await fetch("/api/v1/cluster", { headers: { "Authorization": "Bearer " + token } });
  if (r.status === 404) return;
  if (!r.ok) throw new Error("cluster: HTTP " + r.status);
  const c = await r.json();
  document.getElementById("cluster-section").hidden = false;
  for (const th of document.querySelectorAll(".cluster-only")) th.hidden = false;
  document.getElementById("cluster-self").textContent = "this page is served by " + c.node;
  const held = {};
  for (const [ep, n] of Object.entries(c.devices || {})) held[n] = (held[n] || 0) + 1;
  const inflight = {};
  for (const l of c.leases || []) if (l.name.startsWith("q:")) inflight[l.owner] = (inflight[l.owner] || 0) + 1;
  const tb = document.querySelector("#nodes tbody");
  tb.replaceChildren();
  for (const n of c.nodes) {
    const state = n.alive ? "alive" : "down";
    tb.append(el("tr", { "data-node": n.name },
      el("td", {}, n.name), el("td", { class: "state-" + state }, state), el("td", {}, held[n.name] || 0),
      el("td", {}, (n.sims || []).join(" ")), el("td", {}, inflight[n.name] || 0),
      el("td", {}, n.udp || ""), el("td", {}, n.api || ""), el("td", {}, new Date(n.heartbeat).toLocaleTimeString())));
  }
  const db = document.querySelector("#cluster-devices tbody");
  db.replaceChildren();
  for (const ep of Object.keys(c.devices || {}).sort()) {
    const n = c.devices[ep], by = (c.takeover || {})[ep];
    db.append(el("tr", { "data-endpoint": ep }, el("td", {}, ep), el("td", {}, n), el("td", {}, by ? by + " (takeover)" : n)));
  }
  const lb = document.querySelector("#leases tbody");
  lb.replaceChildren();
  if (!(c.leases || []).length) lb.append(el("tr", {}, el("td", { colspan: 4 }, "no work in flight")));
  for (const l of c.leases || []) {
    lb.append(el("tr", {}, el("td", {}, l.name), el("td", {}, l.owner), el("td", {}, l.token), el("td", {}, Math.round(l.ttl / 1e6) + " ms")));
  }
}

async function objectDef(id) {
  if (!objects[id]) objects[id] = (await api("GET", "/objects/" + id)).body;
  return objects[id];
}

function parseLinks(s) {
  // "</1>;ver=1.1,</1/0>,</3311/0>" → instance paths
  const out = [];
  for (const m of s.matchAll(/<\/(\d+)\/(\d+)>/g)) out.push([Number(m[1]), Number(m[2])]);
  return out;
}

// smsUsageText renders a device's SMS accounting: totals, by purpose,
// and today's spend against its daily budget.
function smsUsageText(u) {
  if (!u) return "";
  const parts = m => Object.entries(m || {}).map(([p, c]) => `${p} ${c.segments}`).join(", ") || "none";
  const budget = u.budget_per_day > 0 ? ` — today ${u.budget_used_today} of ${u.budget_per_day} SMS` : ` — today ${u.budget_used_today} SMS`;
  return `SMS ${u.number}: sent ${u.sent_total.segments} (${parts(u.sent)}), received ${u.received_total.segments} (${parts(u.received)})${budget}`;
}

async function selectDevice(ep) {
  current = ep;
  params.set("device", ep);
  document.querySelectorAll("#fleet tr").forEach(tr => tr.classList.toggle("sel", tr.dataset.endpoint === ep));
  const d = await refreshDevice(ep);
  document.getElementById("device-section").hidden = false;
  document.getElementById("device-name").textContent = ep;
  const tree = document.getElementById("tree");
  tree.replaceChildren();
  const asleep = d.queue && !d.awake;
  const reads = [];
  for (const [o, i] of parseLinks(d.objects)) {
    const def = await objectDef(o).catch(() => ({ id: o, name: "Object " + o, resources: [] }));
    const box = el("div", { class: "obj", id: `obj-${o}-${i}` },
      el("h4", {}, `/${o}/${i} ${def.name} `, el("button", { onclick: () => readInstance(ep, o, i) }, "Read"),
        asleep ? " " : "", asleep ? el("button", { class: "next-wake", onclick: () => readAtWake(ep, [`/${o}/${i}`]) }, "read at next wake-up") : ""));
    const t = el("table", {});
    for (const r of def.resources) {
      const p = `/${o}/${i}/${r.id}`;
      const cell = el("td", { class: "val", id: "v" + p.replaceAll("/", "-") });
      const actions = el("td", {});
      if (r.operations.includes("R")) actions.append(el("button", { onclick: () => readPath(ep, p) }, "read"));
      if (r.operations.includes("W")) {
        const inp = el("input", { size: 10, placeholder: r.type });
        actions.append(" ", inp, el("button", { onclick: () => writePath(ep, p, inp.value) }, "write"));
      }
      if (r.operations.includes("E")) actions.append(" ", el("button", { onclick: () => execPath(ep, p) }, "execute"));
      t.append(el("tr", {}, el("td", {}, r.id), el("td", {}, r.name), el("td", {}, r.type), cell, actions));
    }
    box.append(t);
    if (!def.resources.length) box.append(el("p", { class: "nomodel" }, `object ${o} is not in the object model: its values show under Last known values; ` +
      "use Discover, and read or write with an explicit type (or add its DDF file to lwm2m.models)"));
    tree.append(box);
    if (d.awake && !d.queue) reads.push(readInstance(ep, o, i));
  }
  dmPanel(ep);
  // The first render (and the page's load event, see holdLoad) waits
  // for these.
  await Promise.all([...reads, loadLastValues(ep).catch(() => {}), loadQueue(ep).catch(() => {})]);
}

// refreshDevice renders the device's description, SMS use and, for a
// sleeping queue-mode device, what the page shows of it and how to reach
// it (sleepNotice in values.js); it returns the device.
async function refreshDevice(ep) {
  const { body: d } = await api("GET", "/devices/" + encodeURIComponent(ep));
  if (ep !== current) return d;
  document.getElementById("device-info").textContent =
    `LwM2M ${d.version}, binding ${d.binding}${d.queue ? " queue mode" : ""}, over ${d.transport} from ${d.address}` +
    `, ${d.awake ? "awake" : "sleeping"}${d.wakeable ? " (wakeable by SMS)" : ""}, lifetime ${d.lifetime} s`;
  document.getElementById("device-sms").textContent = smsUsageText(d.sms_usage);
  sleepNotice(d);
  return d;
}

function showValues(res) {
  for (const v of res.values || []) {
    const p = v.path.split("/").slice(0, 4).join("/");
    const cell = document.getElementById("v" + p.replaceAll("/", "-"));
    if (cell) {
      cell.textContent = (cell.dataset.multi && cell.textContent && !cell.classList.contains("last") ? cell.textContent + ", " : "") + fmtValue(v.value);
      cell.classList.remove("last");
      cell.removeAttribute("title"); // a "last known" tooltip, if the last values came first
    }
  }
}

function note(msg, err) {
  const li = el("li", { class: err ? "err" : "" }, new Date().toLocaleTimeString() + " " + msg);
  document.getElementById("events").prepend(li);
}

async function run(method, ep, path, body, what) {
  try {
    const { status, body: res } = await api(method, path + "?wait=60s", body);
    if (status === 202) { note(`${what}: queued as job ${res.job.id} (device asleep)`); loadQueue(ep); return null; }
    note(`${what}: ${res.code}`);
    return res;
  } catch (e) { note(`${what}: ${e.message}`, true); return null; }
}

async function readInstance(ep, o, i) {
  const res = await run("GET", ep, `/devices/${encodeURIComponent(ep)}/data/${o}/${i}`, undefined, `read /${o}/${i}`);
  if (res) showValues(res);
}
async function readPath(ep, p) {
  const res = await run("GET", ep, `/devices/${encodeURIComponent(ep)}/data${p}`, undefined, `read ${p}`);
  if (res) showValues(res);
}
async function writePath(ep, p, v) {
  await run("PUT", ep, `/devices/${encodeURIComponent(ep)}/data${p}`, { value: v }, `write ${p}=${v}`);
  await readPath(ep, p);
  loadLastValues(ep).catch(() => {});
}
async function execPath(ep, p) {
  await run("POST", ep, `/devices/${encodeURIComponent(ep)}/execute${p}`, {}, `execute ${p}`);
}

async function loadQueue(ep) {
  const { body } = await api("GET", "/jobs?endpoint=" + encodeURIComponent(ep));
  const tb = document.querySelector("#queue tbody");
  tb.replaceChildren();
  if (!body.jobs.length) tb.append(el("tr", {}, el("td", { colspan: 5 }, "no queued work")));
  for (const j of body.jobs) {
    tb.append(el("tr", {}, el("td", {}, j.id), el("td", {}, j.op), el("td", {}, j.paths.join(" ")),
      el("td", {}, j.state), el("td", {}, new Date(j.created).toLocaleTimeString())));
  }
}

// The live event stream. It runs in a dedicated worker (events-worker.js)
// that forwards each event to the page: an EventSource is a fetch that
// never ends, and a page with a fetch pending never becomes idle for
// headless browsers (chromium --virtual-time-budget stops its clock while
// a fetch of the page is pending, so it never took its screenshot); a
// worker's fetches are not the page's. Without Worker support the page
// opens the stream itself.
const eventHandlers = {};
function onEvent(kinds, f) { for (const k of kinds) eventHandlers[k] = f; }

onEvent(["notification", "send"], (d, kind) => {
  note(`${kind} ${d.endpoint} ${d.path || ""} ${(d.values || []).map(v => v.path + "=" + fmtValue(v.value)).join(" ")}`);
  if (current && d.endpoint === current) showValues(d);
  if (kind === "notification") dmNotification(d);
});
onEvent(["registered", "updated", "deregistered", "expired", "notified", "job-done", "job-failed", "job-wake", "job-woke", "job-queued"], (d, kind) => {
  note(`${kind} ${d.endpoint}${d.path ? " " + d.path : ""}${d.job ? " job " + d.job : ""}`);
  if (kind !== "notified") loadFleet().catch(() => {});
  if (current && d.endpoint === current && kind.startsWith("job-")) loadQueue(current).catch(() => {});
  if (kind === "job-wake" || kind === "job-woke") loadSMS().catch(() => {});
  if (current && d.endpoint === current && (kind === "registered" || kind === "updated")) refreshDevice(current).catch(() => {});
});
onEvent(["campaign", "campaign-device", "firmware-update", "firmware-image"], (d, kind) => {
  if (kind === "campaign-device") note(`campaign ${d.campaign}: ${d.device.endpoint} ${d.device.state}${d.device.step ? " (" + d.device.step + ")" : ""}`);
  else if (kind === "firmware-update") note(`firmware ${d.endpoint}: ${d.step || d.state}`);
  else note(`${kind} ${d.id}`);
});
onEvent(["values"], (d) => {
  if (current && d.endpoint === current) loadLastValues(current).catch(() => {});
});
onEvent(["sms-budget"], (d) => {
  note(`SMS budget (${d.scope}) ${d.endpoint || d.number || ""}: ${d.used} of ${d.limit}${d.exhausted ? ", exhausted" : ""}`, d.exhausted);
  loadSMS().catch(() => {});
});

function dispatchEvent(kind, data) {
  const h = eventHandlers[kind];
  if (!h) return;
  let d;
  try { d = JSON.parse(data); } catch (e) { return; }
  h(d, kind);
}

function events() {
  // EventSource cannot send headers; the token goes as a query parameter
  // the API accepts for this stream only.
  const url = "/api/v1/events?access_token=" + encodeURIComponent(token);
  const kinds = Object.keys(eventHandlers);
  if (window.Worker) {
    const w = new Worker("events-worker.js");
    w.onmessage = (m) => dispatchEvent(m.data.kind, m.data.data);
    w.postMessage({ url, kinds });
    return;
  }
  const es = new EventSource(url);
  for (const k of kinds) es.addEventListener(k, (ev) => dispatchEvent(k, ev.data));
}

let currentCampaign = params.get("campaign") || "";

async function loadFirmware() {
  const { body: imgs } = await api("GET", "/firmware");
  const it = document.querySelector("#images tbody");
  it.replaceChildren();
  if (!imgs.images.length) it.append(el("tr", {}, el("td", { colspan: 6 }, "no images; upload with smsgw fw upload FILE -version V")));
  for (const im of imgs.images) {
    it.append(el("tr", { "data-image": im.id }, el("td", {}, im.id), el("td", {}, im.name || ""), el("td", {}, im.version),
      el("td", {}, im.size), el("td", { class: "hash" }, im.sha256.slice(0, 16) + "…"), el("td", {}, new Date(im.created).toLocaleString())));
  }
  const { body: cs } = await api("GET", "/campaigns");
  const ct = document.querySelector("#campaigns tbody");
  ct.replaceChildren();
  if (!cs.campaigns.length) ct.append(el("tr", {}, el("td", { colspan: 15 }, "no campaigns")));
  for (const c of cs.campaigns) {
    const n = c.counts || {}, why = c.reasons || {};
    const finished = (n.done || 0) + (n.failed || 0) + (n.skipped || 0) + (n.cancelled || 0);
    const pct = c.total ? Math.round(100 * finished / c.total) : 100;
    const actions = el("td", {});
    for (const a of c.status === "running" ? ["pause", "cancel"] : c.status === "paused" ? ["resume", "cancel"] : []) {
      actions.append(el("button", { onclick: () => campaignAction(c.id, a) }, a), " ");
    }
    const count = (k, v, cls) => el("td", { class: "count count-" + k + (v && cls ? " " + cls : "") }, v || 0);
    ct.append(el("tr", { "data-campaign": c.id, class: c.id === currentCampaign ? "sel" : "" },
      el("td", {}, el("a", { onclick: () => selectCampaign(c.id) }, c.id)), el("td", {}, c.spec.name || ""), el("td", {}, c.version),
      el("td", { class: "campaign-" + c.status }, c.status),
      el("td", {}, el("progress", { max: c.total || 1, value: finished }), ` ${finished}/${c.total} (${pct}%)`),
      count("pending", n.pending), count("running", n.running), count("done", n.done), count("skipped", n.skipped, "warn"),
      count("over-budget", why.sms_budget, "warn"), count("failed", n.failed, "err"), count("cancelled", n.cancelled),
      el("td", { class: "count-sms" }, `${c.sms_used} / ${smsBudgetText(c.spec.sms_budget)}`), actions));
  }
  if (currentCampaign) await selectCampaign(currentCampaign);
}

function smsBudgetText(b) { return b < 0 ? "unlimited" : b === 0 ? "none" : String(b); }

// What a device's reason reads as in the campaign view.
const campaignReasons = { sms_budget: "over the SMS budget", unsupported: "cannot take this update", up_to_date: "already on the version" };

// campaignSummary says where every device of the campaign stands, each
// state (and the reasons behind skipped and done) with its count, so that
// the counts add up to the campaign's size.
function campaignSummary(c) {
  const n = c.counts || {}, why = c.reasons || {};
  const parts = [];
  const add = (state, label, sub) => {
    if (!n[state]) return;
    const subs = (sub || []).filter(r => why[r]).map(r => `${why[r]} ${campaignReasons[r]}`);
    parts.push(`${n[state]} ${label}` + (subs.length ? ` (${subs.join(", ")})` : ""));
  };
  add("done", "done", ["up_to_date"]);
  add("skipped", "skipped", ["sms_budget", "unsupported"]);
  add("failed", "failed");
  add("cancelled", "cancelled");
  add("running", "running");
  add("pending", "pending");
  return `${c.total} device${c.total === 1 ? "" : "s"}: ${parts.join(", ") || "none"}; SMS ${c.sms_used} used of ${smsBudgetText(c.spec.sms_budget)}`;
}


// A campaign's devices come a page at a time too; "more" appends the next.
let campaignNext = "";

async function selectCampaign(id, more) {
  if (id !== currentCampaign) more = false;
  currentCampaign = id;
  document.querySelectorAll("#campaigns tr").forEach(tr => tr.classList.toggle("sel", tr.dataset.campaign === id));
  const cur = more && campaignNext ? "&cursor=" + encodeURIComponent(campaignNext) : "";
  const { body } = await api("GET", "/campaigns/" + encodeURIComponent(id) + "?devices=1&limit=200" + cur);
  const c = body.campaign;
  document.getElementById("campaign-detail").hidden = false;
  document.getElementById("campaign-name").textContent = `${c.id} → ${c.version}: ${c.status}` + (body.failed ? `, ${body.failed} failed` : "");
  document.getElementById("campaign-summary").textContent = campaignSummary(c);
  const tb = document.querySelector("#campaign-devices tbody");
  if (!more) tb.replaceChildren();
  for (const d of c.devices || []) {
    tb.append(el("tr", { "data-endpoint": d.endpoint, class: "dev-row-" + d.state }, el("td", {}, d.endpoint), el("td", { class: "dev-" + d.state }, d.state),
      el("td", {}, d.step || ""), el("td", {}, d.method || ""), el("td", {}, d.attempts), el("td", {}, d.sms || 0),
      el("td", {}, d.result || ""), el("td", { class: "reason" }, campaignReasons[d.reason] || d.reason || ""),
      el("td", { class: d.state === "done" ? "" : "err" }, d.error || "")));
  }
  campaignNext = body.next_cursor || "";
  const btn = document.getElementById("campaign-more");
  btn.hidden = !campaignNext;
  btn.textContent = `more (${tb.children.length} of ${body.total} shown)`;
}

async function campaignAction(id, action) {
  try { await api("POST", `/campaigns/${encodeURIComponent(id)}/${action}`); note(`campaign ${id}: ${action}`); }
  catch (e) { note(`campaign ${id}: ${action}: ${e.message}`, true); }
  loadFirmware().catch(() => {});
}

async function refresh() {
  try {
    await Promise.all([loadFleet(), loadModems(), loadFirmware(), loadSMS(), loadCluster()]);
    if (current) await selectDevice(current);
  } catch (e) {
    document.getElementById("status").textContent = e.message;
  }
}

// holdLoad keeps the page's load event from firing until the function it
// returns is called (or maxMs passed): a hidden frame whose document is
// open (document.open) delays its parent's load event until it is closed.
// The first render runs on API calls the load event does not wait for, so
// without this a screenshot taken at load (chromium --headless
// --screenshot URL, print, crawlers) showed a half-filled page.
function holdLoad(maxMs) {
  const f = document.createElement("iframe");
  f.hidden = true;
  f.title = "load hold";
  document.body.append(f);
  let held = true;
  try { f.contentDocument.open(); } catch (e) { f.remove(); return () => {}; }
  const release = () => {
    if (!held) return;
    held = false;
    try { f.contentDocument.close(); } catch (e) { /* already gone */ }
    f.remove();
  };
  setTimeout(release, maxMs);
  return release;
}

// "#live=0" renders once without the event stream and polling (printing,
// a static snapshot); headless screenshots no longer need it.
const live = params.get("live") !== "0";
if (!token) askToken();
else {
  const release = holdLoad(15000);
  refresh().then(() => { document.body.dataset.ready = "1"; }).finally(release);
  if (live) {
    events();
    // A device falls asleep without an event: its view is polled with the fleet.
    setInterval(() => { loadFleet().catch(() => {}); if (current) refreshDevice(current).catch(() => {}); }, 5000);
    setInterval(() => loadFirmware().catch(() => {}), 3000);
    setInterval(() => loadSMS().catch(() => {}), 10000);
    setInterval(() => loadCluster().catch(() => {}), 3000);
    setInterval(refreshAges, 5000);
  }
}
