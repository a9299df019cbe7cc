// smsgw web UI: the API's event stream, run in a dedicated worker so that
// the page itself has no fetch that never ends (see events in app.js).
// The page posts {url, kinds}; each event of those kinds comes back as
// {kind, data} with data the event's JSON text.
"use strict";
let stream = null;
onmessage = (m) => {
  if (stream) return; // one stream per worker
  const { url, kinds } = m.data;
  stream = new EventSource(url);
  for (const k of kinds) stream.addEventListener(k, (ev) => postMessage({ kind: k, data: ev.data }));
};
