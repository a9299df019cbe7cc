// smsgw web UI: device management views of the selected device (Discover,
// Write-Attributes, Read-Composite, Write-Composite, Observe-Composite with
// cancel) over the routes of gateway/dmapi.go. Uses el, api, note and
// fmtValue of app.js; app.js calls dmPanel when a device is selected and
// dmNotification for every notification event.
"use strict";

const dmTypes = ["", "String", "Integer", "Unsigned Integer", "Float", "Boolean", "Opaque", "Time", "Objlnk", "Corelnk"];
const dmAttrNames = ["pmin", "pmax", "gt", "lt", "st", "epmin", "epmax", "edge", "con", "hqmax"];
// Active Observe-Composite observations started from this page, by device
// and path set ("/3/0/9,/3311/0/5851" as the API names it).
const dmObservations = new Map();

function dmPanel(ep) {
  const box = document.getElementById("dm");
  box.replaceChildren(el("h3", {}, "Device management"),
    dmDiscoverView(ep), dmAttributesView(ep), dmReadCompositeView(ep), dmWriteCompositeView(ep), dmObserveCompositeView(ep));
}

function dmView(id, title, form, ...rest) {
  return el("div", { class: "dm", id: "dm-" + id }, el("h4", {}, title), form, el("div", { class: "dm-result", id: "dm-" + id + "-result" }), ...rest);
}

// dmPaths splits "/3/0/0, /3311/0" into paths.
function dmPaths(s) {
  return s.split(/[\s,]+/).map(p => p.trim()).filter(p => p !== "");
}

// dmCall runs one operation and shows its outcome in the view's result
// box: the answer (returned), "queued as job N" for a sleeping device, or
// the error.
async function dmCall(view, method, route, body, what) {
  const out = document.getElementById("dm-" + view + "-result");
  out.classList.remove("err");
  out.dataset.state = "pending";
  out.replaceChildren(what + " …");
  try {
    const { status, body: res } = await api(method, route + "?wait=60s", body);
    if (status === 202) {
      out.dataset.state = "queued";
      out.replaceChildren(`${what}: queued as job ${res.job.id} (device asleep)`);
      note(`${what}: queued as job ${res.job.id}`);
      if (typeof loadQueue === "function") loadQueue(current).catch(() => {});
      return null;
    }
    out.dataset.state = "done";
    out.replaceChildren(`${what}: ${res.code}`);
    note(`${what}: ${res.code}`);
    return res;
  } catch (e) {
    out.classList.add("err");
    out.dataset.state = "error";
    out.replaceChildren(`${what}: ${e.message}`);
    note(`${what}: ${e.message}`, true);
    return null;
  }
}

function dmDevice(ep) { return "/devices/" + encodeURIComponent(ep); }

// dmValuesTable renders [{path, value}] with the model's names.
async function dmValuesTable(values) {
  const t = el("table", { class: "dm-values" }, el("thead", {}, el("tr", {}, el("th", {}, "Path"), el("th", {}, "Name"), el("th", {}, "Value"))));
  const tb = el("tbody", {});
  for (const v of values || []) {
    tb.append(el("tr", { "data-path": v.path }, el("td", {}, v.path), el("td", {}, await dmName(v.path)), el("td", { class: "val" }, fmtValue(v.value))));
  }
  t.append(tb);
  return t;
}

// dmName is the model's name of a resource path ("" when unknown).
async function dmName(p) {
  const seg = p.split("/");
  if (seg.length < 4) return "";
  const def = await objectDef(Number(seg[1])).catch(() => null);
  const r = def && (def.resources || []).find(r => r.id === Number(seg[3]));
  return r ? r.name : "";
}

function dmDiscoverView(ep) {
  const path = el("input", { name: "path", size: 16, value: "/3/0" });
  const form = el("form", {}, "path ", path, " ", el("button", {}, "Discover"));
  form.onsubmit = (ev) => { ev.preventDefault(); dmDiscover(ep, path.value.trim()); };
  return dmView("discover", "Discover", form, el("div", { id: "dm-discover-links" }));
}

async function dmDiscover(ep, p) {
  const res = await dmCall("discover", "GET", dmDevice(ep) + "/discover" + p, undefined, `discover ${p}`);
  const box = document.getElementById("dm-discover-links");
  box.replaceChildren();
  if (!res) return;
  const t = el("table", { class: "dm-links" }, el("thead", {}, el("tr", {}, el("th", {}, "Path"), el("th", {}, "Name"),
    el("th", {}, "Operations"), el("th", {}, "Attributes"), el("th", {}, ""))));
  const tb = el("tbody", {});
  for (const l of res.links || []) {
    const attrs = Object.entries(l.attributes || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    const edit = el("button", { onclick: () => dmEditAttributes(l.path, l.attributes || {}) }, "attributes…");
    tb.append(el("tr", { "data-path": l.path }, el("td", {}, l.path), el("td", {}, l.name || ""), el("td", {}, l.operations || ""),
      el("td", { class: "attrs" }, attrs), el("td", {}, l.path.split("/").length > 2 ? edit : "")));
  }
  t.append(tb);
  box.append(t);
}

function dmAttributesView(ep) {
  const path = el("input", { name: "path", size: 16, placeholder: "/3311/0/5851" });
  const inputs = {};
  const form = el("form", {}, "path ", path);
  for (const n of dmAttrNames) {
    inputs[n] = el("input", { name: n, size: 5 });
    form.append(" ", el("label", {}, n + " ", inputs[n]));
  }
  const unset = el("input", { name: "unset", size: 12, placeholder: "gt lt" });
  form.append(" ", el("label", {}, "remove ", unset), " ", el("button", {}, "Write attributes"));
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const set = {};
    for (const n of dmAttrNames) {
      const v = inputs[n].value.trim();
      if (v === "") continue;
      if (isNaN(Number(v))) {
        const out = document.getElementById("dm-attributes-result");
        out.classList.add("err");
        out.dataset.state = "error";
        out.replaceChildren(`${n}: "${v}" is not a number`);
        return;
      }
      set[n] = Number(v);
    }
    dmWriteAttributes(ep, path.value.trim(), set, dmPaths(unset.value));
  };
  return dmView("attributes", "Write-Attributes", form);
}

// dmEditAttributes fills the Write-Attributes form from a Discover link.
function dmEditAttributes(p, attrs) {
  const form = document.querySelector("#dm-attributes form");
  form.elements.path.value = p;
  for (const n of dmAttrNames) form.elements[n].value = attrs[n] !== undefined ? attrs[n] : "";
  form.elements.unset.value = "";
  form.elements.pmin.focus();
}

async function dmWriteAttributes(ep, p, set, unset) {
  const body = {};
  if (Object.keys(set).length) body.set = set;
  if (unset.length) body.unset = unset;
  const what = `write-attributes ${p} ` + Object.entries(set).map(([k, v]) => `${k}=${v}`).concat(unset.map(n => "-" + n)).join(" ");
  const res = await dmCall("attributes", "PUT", dmDevice(ep) + "/attributes" + p, body, what.trim());
  // Show what the device now holds: Discover of the same path.
  if (res) {
    document.querySelector("#dm-discover form").elements.path.value = p;
    await dmDiscover(ep, p);
  }
}

function dmReadCompositeView(ep) {
  const paths = el("input", { name: "paths", size: 40, value: "/3/0/0 /3/0/9" });
  const form = el("form", {}, "paths ", paths, " ", el("button", {}, "Read"));
  form.onsubmit = (ev) => { ev.preventDefault(); dmReadComposite(ep, dmPaths(paths.value)); };
  return dmView("read-composite", "Read-Composite", form, el("div", { id: "dm-read-composite-values" }));
}

async function dmReadComposite(ep, paths) {
  const res = await dmCall("read-composite", "POST", dmDevice(ep) + "/composite/read", { paths }, `read-composite ${paths.join(" ")}`);
  const box = document.getElementById("dm-read-composite-values");
  box.replaceChildren();
  if (!res) return;
  box.append(await dmValuesTable(res.values));
  showValues(res);
  if (typeof loadLastValues === "function") loadLastValues(ep).catch(() => {});
}

function dmWriteCompositeView(ep) {
  const rows = el("tbody", {});
  const addRow = () => {
    const type = el("select", { name: "type" });
    for (const t of dmTypes) type.append(el("option", { value: t }, t || "(model)"));
    rows.append(el("tr", {}, el("td", {}, el("input", { name: "path", size: 16, placeholder: "/3311/0/5851" })),
      el("td", {}, el("input", { name: "value", size: 14 })), el("td", {}, type)));
  };
  addRow();
  const form = el("form", {}, el("table", { class: "dm-rows" },
    el("thead", {}, el("tr", {}, el("th", {}, "Path"), el("th", {}, "Value"), el("th", {}, "Type (outside the model)"))), rows),
    el("button", { type: "button", onclick: addRow }, "+ resource"), " ", el("button", {}, "Write"));
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const values = {}, types = {};
    for (const tr of rows.querySelectorAll("tr")) {
      const p = tr.querySelector("[name=path]").value.trim();
      if (p === "") continue;
      values[p] = tr.querySelector("[name=value]").value;
      const t = tr.querySelector("[name=type]").value;
      if (t) types[p] = t;
    }
    dmWriteComposite(ep, values, types);
  };
  return dmView("write-composite", "Write-Composite", form);
}

async function dmWriteComposite(ep, values, types) {
  const body = { values };
  if (Object.keys(types).length) body.types = types;
  const what = "write-composite " + Object.entries(values).map(([p, v]) => `${p}=${v}`).join(" ");
  const res = await dmCall("write-composite", "POST", dmDevice(ep) + "/composite/write", body, what);
  if (res && typeof loadLastValues === "function") loadLastValues(ep).catch(() => {});
}

function dmObserveCompositeView(ep) {
  const paths = el("input", { name: "paths", size: 40, value: "/3/0/9 /3311/0/5851" });
  const form = el("form", {}, "paths ", paths, " ", el("button", {}, "Observe"), " ",
    el("button", { type: "button", onclick: () => dmCancelObserve(ep, dmPaths(paths.value)) }, "Cancel"));
  form.onsubmit = (ev) => { ev.preventDefault(); dmObserveComposite(ep, dmPaths(paths.value)); };
  const t = el("table", { id: "dm-observations" }, el("thead", {}, el("tr", {}, el("th", {}, "Paths"), el("th", {}, "Values"),
    el("th", {}, "Notifications"), el("th", {}, "Updated"), el("th", {}, ""))), el("tbody", {}));
  const view = dmView("observe-composite", "Observe-Composite", form, t);
  dmRenderObservations(ep, t);
  return view;
}

async function dmObserveComposite(ep, paths) {
  const res = await dmCall("observe-composite", "POST", dmDevice(ep) + "/composite/observe", { paths }, `observe-composite ${paths.join(" ")}`);
  if (!res) return;
  dmObservations.set(ep + "|" + res.path, { ep, key: res.path, paths, values: res.values || [], count: 0, updated: new Date() });
  dmRenderObservations(ep);
  showValues(res);
}

async function dmCancelObserve(ep, paths) {
  const res = await dmCall("observe-composite", "DELETE", dmDevice(ep) + "/composite/observe", { paths }, `cancel observe-composite ${paths.join(" ")}`);
  if (!res) return;
  dmObservations.delete(ep + "|" + res.path);
  dmRenderObservations(ep);
}

function dmRenderObservations(ep, table) {
  const t = table || document.getElementById("dm-observations");
  if (!t) return;
  const tb = t.querySelector("tbody");
  tb.replaceChildren();
  let n = 0;
  for (const o of dmObservations.values()) {
    if (o.ep !== ep) continue;
    n++;
    tb.append(el("tr", { "data-paths": o.key }, el("td", {}, o.paths.join(" ")),
      el("td", { class: "val" }, o.values.map(v => `${v.path}=${fmtValue(v.value)}`).join(" ")),
      el("td", { class: "count" }, o.count), el("td", {}, o.updated.toLocaleTimeString()),
      el("td", {}, el("button", { onclick: () => dmCancelObserve(o.ep, o.paths) }, "cancel"))));
  }
  if (!n) tb.append(el("tr", {}, el("td", { colspan: 5 }, "no composite observation from this page")));
}

// dmNotification updates the observation a notification event belongs to.
function dmNotification(d) {
  const o = dmObservations.get(d.endpoint + "|" + (d.path || ""));
  if (!o) return;
  if (d.values) o.values = d.values;
  o.count++;
  o.updated = new Date();
  if (d.endpoint === current) dmRenderObservations(d.endpoint);
}
