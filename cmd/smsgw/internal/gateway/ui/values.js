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
  if (!vals.length) tb.append(el("tr", {}, el("td", { colspan: 6 }, "no values seen yet: read the device, or wait for its notifications")));
}

// refreshAges rewrites every age on the page (live mode, every few seconds).
function refreshAges() {
  for (const e of document.querySelectorAll("[data-time]")) {
    const age = fmtAge(e.dataset.time);
    e.textContent = e.classList.contains("age") && e.tagName === "SPAN" ? e.textContent.replace(/[^,(]*ago\)$/, " " + age + ")") : age;
  }
}
