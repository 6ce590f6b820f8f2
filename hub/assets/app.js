// The hub's web view script, compiled into the binary. The pages arrive rendered by the
// server; this keeps them live over server-sent events: the fleet table's rows (status, last
// seen, every cell; a forgotten device's row is removed), a device's status, facts and
// probes, its event feed and its metrics charts (SVG drawn here). Text from devices is only
// ever set with textContent, never parsed as HTML.
"use strict";

const body = document.body;
const token = body.dataset.token || "";

function api(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

function age(ms) {
  if (!ms || ms <= 0) return "never";
  const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

// Sets a node's text only when it changes: a thousand-row table re-lays out only what moved.
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function tickAges() {
  for (const el of document.querySelectorAll("[data-ms]")) {
    setText(el, age(Number(el.dataset.ms)));
  }
}

function stream(path, handlers, stateEl) {
  const es = new EventSource(api(path));
  es.onopen = () => { if (stateEl) stateEl.textContent = "live"; };
  es.onerror = () => { if (stateEl) stateEl.textContent = "reconnecting…"; };
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  return es;
}

// ---- fleet table ----
function fleetPage() {
  const tbody = document.getElementById("fleet-rows");
  const rows = new Map();
  for (const tr of tbody.rows) rows.set(tr.dataset.device, tr);
  const columns = Array.from(document.querySelectorAll("#fleet thead th")).length - 1;
  const filterDevice = document.getElementById("filter-device");
  const filterStatus = document.getElementById("filter-status");
  const params = new URLSearchParams(location.search);
  filterStatus.value = params.get("status") || "";

  function visible(tr) {
    const d = filterDevice.value.trim();
    const s = filterStatus.value;
    return (!d || tr.dataset.device.includes(d)) && (!s || tr.dataset.status === s);
  }
  function applyFilter() {
    for (const tr of rows.values()) tr.classList.toggle("hidden", !visible(tr));
  }
  function counts() {
    let on = 0, off = 0;
    for (const tr of rows.values()) {
      if (tr.dataset.status === "online") on++;
      if (tr.dataset.status === "offline") off++;
    }
    document.getElementById("count-devices").textContent = String(rows.size);
    document.getElementById("count-online").textContent = String(on);
    document.getElementById("count-offline").textContent = String(off);
  }
  function newRow(id) {
    const tr = document.createElement("tr");
    tr.dataset.device = id;
    const td = document.createElement("td");
    td.dataset.col = "device";
    const a = document.createElement("a");
    a.href = api("/device/" + encodeURIComponent(id));
    a.textContent = id;
    td.appendChild(a);
    tr.appendChild(td);
    const keys = ["status", "last_seen", "agent", "kernel", "page", "btf", "probes", "cpu",
      "mem", "temp", "throttled", "events", "drops", "gaps", "dups"].slice(0, columns);
    for (const k of keys) {
      const c = document.createElement("td");
      c.dataset.col = k;
      tr.appendChild(c);
    }
    const after = Array.from(rows.keys()).filter((k) => k > id).sort()[0];
    tbody.insertBefore(tr, after ? rows.get(after) : null);
    return tr;
  }
  function update(d) {
    let tr = rows.get(d.device);
    if (!tr) {
      tr = newRow(d.device);
      rows.set(d.device, tr);
    }
    if (tr.dataset.status !== d.status) {
      tr.dataset.status = d.status;
      tr.classList.remove("online", "offline", "unknown");
      tr.classList.add(d.status);
    }
    for (const [k, text] of Object.entries(d.cells)) {
      const td = tr.querySelector('td[data-col="' + k + '"]');
      if (!td) continue;
      setText(td, text);
      if (k === "last_seen") td.dataset.ms = String(d.last_seen_ms);
    }
    tr.classList.toggle("hidden", !visible(tr));
  }
  filterDevice.addEventListener("input", applyFilter);
  filterStatus.addEventListener("change", applyFilter);
  applyFilter();
  stream("/api/fleet/stream?since=" + encodeURIComponent(body.dataset.version || "0"), {
    gone: (ids) => {
      for (const id of ids) {
        const tr = rows.get(id);
        if (tr) { tr.remove(); rows.delete(id); }
      }
      counts();
    },
    devices: (list) => { list.forEach(update); counts(); },
  }, null);
}

// ---- device page ----
const CHARTS = {
  cpu: (s) => s.cpu_percent,
  mem: (s) => (s.mem_total_kib > 0 ? (100 * s.mem_used_kib) / s.mem_total_kib : null),
  temp: (s) => s.temp_c,
  rss: (s) => s.agent_rss_kib / 1024,
};
const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function draw(id, samples) {
  const svg = document.getElementById("chart-" + id);
  const pts = samples.map((s) => [s.ts_ms, CHARTS[id](s)]).filter((p) => p[1] != null && isFinite(p[1]));
  const last = document.getElementById("last-" + id);
  svg.replaceChildren();
  if (pts.length === 0) {
    const t = svgEl("text", { x: 8, y: 20 });
    t.textContent = "no samples yet";
    svg.appendChild(t);
    last.textContent = "";
    return;
  }
  const W = 600, H = 150, P = 4;
  const x0 = pts[0][0], x1 = Math.max(pts[pts.length - 1][0], x0 + 1);
  let lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const sx = (x) => P + ((x - x0) / (x1 - x0)) * (W - 2 * P);
  const sy = (y) => H - P - ((y - lo) / (hi - lo)) * (H - 2 * P);
  svg.appendChild(svgEl("line", { x1: P, y1: sy(lo), x2: W - P, y2: sy(lo) }));
  svg.appendChild(svgEl("line", { x1: P, y1: sy(hi), x2: W - P, y2: sy(hi) }));
  const top = svgEl("text", { x: P + 2, y: sy(hi) + 11 });
  top.textContent = hi.toFixed(1);
  const bottom = svgEl("text", { x: P + 2, y: sy(lo) - 3 });
  bottom.textContent = lo.toFixed(1);
  svg.append(top, bottom);
  svg.appendChild(svgEl("polyline", {
    points: pts.map((p) => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" "),
  }));
  last.textContent = "now " + pts[pts.length - 1][1].toFixed(1);
}

function devicePage() {
  const id = body.dataset.device;
  const feed = document.getElementById("feed-rows");
  const kind = document.getElementById("feed-kind");
  const badge = document.getElementById("status");
  const seen = document.getElementById("last-seen");
  let samples = [];
  const redraw = () => { for (const c of Object.keys(CHARTS)) draw(c, samples); };
  function filter() {
    for (const tr of feed.rows) tr.classList.toggle("hidden", kind.value !== "" && tr.dataset.kind !== kind.value);
  }
  function addRecord(r) {
    const tr = document.createElement("tr");
    tr.dataset.kind = r.kind;
    for (const [text, cls] of [[r.time, ""], [r.kind, ""], [r.text, "text"]]) {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      td.textContent = text;
      tr.appendChild(td);
    }
    tr.classList.toggle("hidden", kind.value !== "" && r.kind !== kind.value);
    feed.insertBefore(tr, feed.firstChild);
    while (feed.rows.length > 300) feed.deleteRow(-1);
  }
  // The probe table is rebuilt only when a birth changed it.
  let shownProbes = null;
  function probes(list) {
    const key = JSON.stringify(list);
    if (key === shownProbes) return;
    shownProbes = key;
    const rows = document.getElementById("probe-rows");
    rows.replaceChildren();
    for (const p of list) {
      const tr = document.createElement("tr");
      tr.className = p.state;
      for (const text of [p.name, p.state, p.reason || ""]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      rows.appendChild(tr);
    }
  }
  kind.addEventListener("change", filter);
  fetch(api("/api/metrics?device=" + encodeURIComponent(id) + "&limit=720"))
    .then((r) => r.json())
    .then((list) => { samples = list.concat(samples); redraw(); })
    .catch(() => redraw());
  stream("/api/stream?device=" + encodeURIComponent(id), {
    record: addRecord,
    metrics: (s) => { samples.push(s); if (samples.length > 720) samples.shift(); redraw(); },
    device: (d) => {
      badge.textContent = d.cells.status;
      badge.classList.remove("online", "offline", "unknown");
      badge.classList.add(d.status);
      body.dataset.status = d.status;
      seen.dataset.ms = String(d.last_seen_ms);
      seen.textContent = age(d.last_seen_ms);
      if (d.status_since) setText(document.getElementById("status-since"), d.status_since);
      for (const [k, text] of Object.entries(d.facts || {})) {
        const td = document.querySelector('#facts tr[data-fact="' + k + '"] td');
        if (td) setText(td, text);
      }
      if (d.probes) probes(d.probes);
    },
  }, document.getElementById("feed-state"));
}

if (body.dataset.page === "fleet") fleetPage();
if (body.dataset.page === "device") devicePage();
setInterval(tickAges, 1000);
