// smsgw web UI: the last known values of the selected device (from reads,
// notifications, Send, queued reads, and the writes it accepted), with
// their age: what an operator sees of a light that sleeps. Uses el, api,
// fmtValue and dmName; app.js calls loadLastValues when a device is
// selected.
"use strict";

// How each source reads in the UI.
const valueSources = {
  "read": "read", "read-composite": "read (composite)", "observe": "observed", "notify": "notification",
  "send": "Send", "job": "queued read", "write": "written", "write-composite": "written (composite)",
};

// fmtAge says how old t is: "12 s ago", "5 min ago", "3 h ago", "2 d ago".
function fmtAge(t, now) {
  const s = Math.max(0, Math.round(((now || Date.now()) - new Date(t).getTime()) / 1000));
  if (s < 90) return s + " s ago";
  if (s < 90 * 60) return Math.round(s / 60) + " min ago";
  if (s < 36 * 3600) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function sourceLabel(s) { return valueSources[s] || s; }

async function loadLastValues(ep) {
  const { body } = await api("GET", "/devices/" + encodeURIComponent(ep) + "/values");
  if (ep !== current) return;
  const tb = document.querySelector("#lastvalues tbody");
  tb.replaceChildren();
  const vals = body.values || [];
  document.getElementById("lastvalues-count").textContent = vals.length ? `${vals.length} resources` : "none yet";
  for (const v of vals) {
    const written = v.source.startsWith("write");
    tb.append(el("tr", { "data-path": v.path, class: written ? "src-write" : "" }, el("td", {}, v.path), el("td", {}, await dmName(v.path)),
      el("td", { class: "val" }, fmtValue(v.value) + (v.size ? ` … (${v.size} bytes)` : "")), el("td", {}, v.type),
      el("td", { class: "src" }, sourceLabel(v.source)),
      el("td", { class: "age", "data-time": v.time, title: new Date(v.time).toLocaleString() }, fmtAge(v.time))));
    // The object tree: a cell not filled by a read of this page shows the
    // last known value, with where it came from and its age.
    const cell = document.getElementById("v" + v.path.split("/").slice(0, 4).join("/").replaceAll("/", "-"));
    if (cell && (!cell.textContent || cell.classList.contains("last"))) {
      cell.replaceChildren(fmtValue(v.value), " ", el("span", { class: "age", "data-time": v.time }, `(${sourceLabel(v.source)}, ${fmtAge(v.time)})`));
      cell.title = `last known: ${sourceLabel(v.source)} at ${new Date(v.time).toLocaleString()}`;
      cell.classList.add("last");
    }
  }
  if (!vals.length) tb.append(el("tr", {}, el("td", { colspan: 6 }, "no values seen yet: read the device (Read at next wake-up when it sleeps), or wait for its notifications")));
}

// refreshAges rewrites every age on the page (live mode, every few seconds).
function refreshAges() {
  for (const e of document.querySelectorAll("[data-time]")) {
    const age = fmtAge(e.dataset.time);
    const t = e.textContent;
    e.textContent = /ago\)$/.test(t) ? t.replace(/[^,(]*ago\)$/, " " + age + ")") : age;
  }
}

// sleepNotice says, for a queue-mode device that sleeps, what the page
// shows of it (the last known values, with their age) and offers to read
// it at its next wake-up; it hides itself for an awake device.
function sleepNotice(d) {
  const box = document.getElementById("device-sleep");
  const asleep = d.queue && !d.awake;
  // What Read at next wake-up said stays while the notice is redrawn
  // (every poll) for the same device.
  const said = box.dataset.endpoint === d.endpoint ? (document.getElementById("device-sleep-result") || {}).textContent || "" : "";
  box.dataset.endpoint = d.endpoint;
  box.hidden = !asleep;
  if (!asleep) { box.replaceChildren(); return; }
  const paths = parseLinks(d.objects).map(([o, i]) => `/${o}/${i}`);
  let how = d.wakeable ? "the server wakes it with one SMS trigger and the reads go when it answers"
    : "it cannot be woken by SMS, so the reads wait until it next contacts the server";
  if (d.transport === "sms") how += " (over SMS: each read costs an SMS each way)";
  box.replaceChildren(
    el("strong", {}, "Asleep"), " (queue mode, last heard ", el("span", { class: "age", "data-time": d.updated }, fmtAge(d.updated)),
    d.queued ? `, ${d.queued} request${d.queued > 1 ? "s" : ""} waiting` : "", "). ",
    "The values shown are the last the server saw, with where they came from and their age. ",
    el("button", { id: "read-next-wake", onclick: () => readAtWake(d.endpoint, paths) }, "Read at next wake-up"),
    ` queues a read of its ${paths.length} object instances: ${how}. `,
    el("span", { id: "device-sleep-result" }, said));
}

// readAtWake queues a read of each path without waiting for the device:
// each becomes a job of its queue, and its values reach Last known values
// when it answers (the "values" event).
async function readAtWake(ep, paths) {
  const jobs = [];
  for (const p of paths) {
    try {
      const { status, body } = await api("GET", `/devices/${encodeURIComponent(ep)}/data${p}?wait=0s`);
      if (status === 202) {
        jobs.push(body.job.id);
        note(`read ${p}: queued as job ${body.job.id} for the next wake-up`);
      } else {
        note(`read ${p}: ${body.code}`);
        showValues(body);
      }
    } catch (e) { note(`read ${p}: ${e.message}`, true); }
  }
  const out = document.getElementById("device-sleep-result");
  if (out && ep === current) {
    out.textContent = jobs.length ? `Queued ${jobs.length} read${jobs.length > 1 ? "s" : ""} (job ${jobs.join(", ")}); the values appear when the device answers.` : "";
  }
  if (ep === current) loadQueue(ep).catch(() => {});
}
