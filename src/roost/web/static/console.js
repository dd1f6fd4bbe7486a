// The console's live parts: server-sent events into the page, uPlot charts, the channel editor.
// Forms and actions are htmx attributes in the templates; this file holds only what htmx does not.
"use strict";

const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f", "#6b7280", "#a16207"];
const MAX_LOG_LINES = 5000;

function swap(el, html) {
  el.innerHTML = html;
  if (window.htmx) htmx.process(el);
}

// ----------------------------------------------------------------------------- charts

function chartSize(el) {
  return { width: Math.max(240, el.clientWidth || 320), height: el.classList.contains("wide") ? 320 : 200 };
}

// styles: per series, overrides of uPlot's series options (a dashed line, points only)
function makeChart(el, labels, xs, columns, { xLabel = "epoch", styles = [] } = {}) {
  const series = [{ label: xLabel }].concat(labels.map((label, i) => Object.assign({
    label, stroke: COLOURS[i % COLOURS.length], width: 2, points: { show: true, size: 5 }, spanGaps: true,
  }, styles[i] || {})));
  const opts = Object.assign(chartSize(el), {
    series, legend: { live: false },
    scales: { x: { time: false } },
    // epochs and job numbers are whole numbers: no tick at 1.5
    axes: [{ label: xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], values: (u, ticks) => ticks.map(String) }, {}],
  });
  el.innerHTML = "";
  const plot = new uPlot(opts, [xs].concat(columns), el);
  new ResizeObserver(() => plot.setSize(chartSize(el))).observe(el);
  return plot;
}

// one chart per metric group on a job's page; each adds a point when an epoch arrives
class EpochChart {
  constructor(el, points) {
    this.el = el;
    this.keys = JSON.parse(el.dataset.series);
    this.points = [];
    this.plot = null;
    for (const p of points) this.add(p, false);
    this.draw();
  }
  present() {  // a series with no values at all (top-k unset, no validation loss) is not drawn
    return this.keys.filter(([key]) => this.points.some((p) => p[key] !== null && p[key] !== undefined));
  }
  add(point, redraw = true) {
    this.points.push(point);
    this.el.dataset.points = String(this.points.length);
    if (redraw) this.draw();
  }
  draw() {
    const keys = this.present();
    if (!keys.length) {
      this.el.innerHTML = '<p class="muted">No epochs yet.</p>';
      return;
    }
    const xs = this.points.map((p) => p.epoch + 1);
    const columns = keys.map(([key]) => this.points.map((p) => (p[key] === undefined ? null : p[key])));
    this.plot = makeChart(this.el, keys.map(([, label]) => label), xs, columns);
  }
}

function compareChart(el, curves) {
  const names = Object.keys(curves);
  const epochs = [...new Set(names.flatMap((n) => curves[n].map(([e]) => e)))].sort((a, b) => a - b);
  const columns = names.map((n) => {
    const byEpoch = new Map(curves[n]);
    return epochs.map((e) => (byEpoch.has(e) ? byEpoch.get(e) : null));
  });
  if (!epochs.length) {
    el.innerHTML = '<p class="muted">These jobs have no epochs yet.</p>';
    return;
  }
  makeChart(el, names, epochs.map((e) => e + 1), columns);
}

// ----------------------------------------------------------------------------- a tuning job's page

function tuningCharts(panel) {
  const data = JSON.parse(panel.querySelector("script.tuning-data").textContent);
  const history = document.getElementById("chart-history");
  if (data.history.length) {
    makeChart(history, ["objective", "best so far"], data.history.map(([n]) => n),
      [data.history.map(([, v]) => v), data.history.map(([, , b]) => b)],
      { xLabel: "training job", styles: [{ width: 0, points: { show: true, size: 7 } }, { points: { show: false } }] });
  } else {
    history.innerHTML = '<p class="muted">No training job has reported the objective yet.</p>';
  }
  const curves = document.getElementById("chart-curves");
  const early = new Set(data.stopped_early);
  const names = Object.keys(data.curves).filter((n) => data.curves[n].length);
  if (!names.length) {
    curves.innerHTML = '<p class="muted">No epochs yet.</p>';
    return;
  }
  const epochs = [...new Set(names.flatMap((n) => data.curves[n].map(([e]) => e)))].sort((a, b) => a - b);
  const columns = names.map((n) => {
    const byEpoch = new Map(data.curves[n]);
    return epochs.map((e) => (byEpoch.has(e) ? byEpoch.get(e) : null));
  });
  makeChart(curves, names.map((n) => (early.has(n) ? n + " (stopped early)" : n)), epochs.map((e) => e + 1), columns,
    { styles: names.map((n) => (early.has(n) ? { dash: [6, 4], points: { show: true, size: 4 } } : {})) });
}

function rangeRows(table) {
  table.addEventListener("change", (e) => {
    if (!e.target.classList.contains("range-kind")) return;
    e.target.closest("tr").dataset.kind = e.target.value;
  });
}

// ----------------------------------------------------------------------------- a job's page

function jobPage(page) {
  const charts = [...page.querySelectorAll(".chart[data-series]")];
  const points = JSON.parse(document.getElementById("chart-points").textContent);
  const drawn = charts.map((el) => new EpochChart(el, points));
  const log = document.getElementById("log");
  const filter = document.getElementById("log-filter-input");
  let stream = log.dataset.stream;
  let source = null;

  function connect() {
    if (source) source.close();
    log.innerHTML = "";
    const params = new URLSearchParams({ stream, filter: filter.value });
    source = new EventSource(page.dataset.events + "?" + params);
    source.addEventListener("status", (e) => swap(document.getElementById("status-panel"), e.data));
    source.addEventListener("report", (e) => swap(document.getElementById("report-panel"), e.data));
    source.addEventListener("tabs", (e) => {
      const tabs = document.getElementById("log-tabs");
      swap(tabs, e.data);
      const current = tabs.querySelector("a[aria-current]");
      if (current) stream = current.dataset.stream;
    });
    source.addEventListener("epoch", (e) => {
      const point = JSON.parse(e.data);
      if (drawn.length && drawn[0].points.some((p) => p.epoch === point.epoch)) return;  // a reconnect resends
      for (const c of drawn) c.add(point);
    });
    source.addEventListener("lines", (e) => {
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.insertAdjacentHTML("beforeend", e.data);
      while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
      if (atBottom) log.scrollTop = log.scrollHeight;
    });
    const url = new URL(location.href);
    url.searchParams.set("filter", filter.value);
    if (stream) url.searchParams.set("stream", stream);
    history.replaceState(null, "", url);
  }

  let pending = null;
  filter.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(connect, 300);
  });
  document.getElementById("log-tabs").addEventListener("click", (e) => {
    const tab = e.target.closest("a[data-stream]");
    if (!tab) return;
    e.preventDefault();
    stream = tab.dataset.stream;
    for (const t of document.querySelectorAll("#log-tabs a")) t.removeAttribute("aria-current");
    tab.setAttribute("aria-current", "page");
    connect();
  });
  window.addEventListener("beforeunload", () => source && source.close());
  connect();
}

// ----------------------------------------------------------------------------- the jobs list

// Every live part of a page (data-live: its stream) is kept by the same server-sent events: each event carries
// the part again; "end" says nothing more will change.
function live(element, handlers) {
  const source = new EventSource(element.dataset.live);
  for (const [event, handle] of Object.entries(handlers)) source.addEventListener(event, handle);
  source.addEventListener("end", () => source.close());
  window.addEventListener("beforeunload", () => source.close());
}

function liveRows(tbody) {
  live(tbody, {
    rows: (e) => {
      const picked = new Set([...tbody.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value));
      swap(tbody, e.data);
      for (const c of tbody.querySelectorAll("input[type=checkbox]")) c.checked = picked.has(c.value);
    },
  });
}

// ----------------------------------------------------------------------------- the create form's channels

function channelEditor(box) {
  function renumber() {
    [...box.querySelectorAll("fieldset.channel")].forEach((set, i) => {
      const n = i + 1;
      set.dataset.index = n;
      set.querySelector("legend").textContent = "Channel " + n;
      for (const el of set.querySelectorAll("[name], [id], [for]")) {
        for (const attr of ["name", "id", "for"]) {
          const v = el.getAttribute(attr);
          if (v) el.setAttribute(attr, v.replace(/inputDataConfig\.\d+\./, `inputDataConfig.${n}.`));
        }
      }
    });
  }
  document.getElementById("add-channel").addEventListener("click", () => {
    const last = box.querySelector("fieldset.channel:last-of-type");
    if (!last) return;
    const copy = last.cloneNode(true);
    for (const input of copy.querySelectorAll("input")) input.value = "";
    for (const e of copy.querySelectorAll(".field-error")) e.textContent = "";
    box.appendChild(copy);
    renumber();
  });
  box.addEventListener("click", (e) => {
    if (!e.target.classList.contains("remove-channel")) return;
    if (box.querySelectorAll("fieldset.channel").length > 1) e.target.closest("fieldset").remove();
    renumber();
  });
}

// ----------------------------------------------------------------------------- the S3 page's upload

// A file goes up in parts of 5 MiB (S3's smallest; the console takes bodies up to 6 MB), so a large one neither
// waits on one request nor has to fit in one.
const PART_BYTES = 5 * 1024 * 1024;

function s3Upload(input) {
  const body = document.body;
  const csrf = JSON.parse(body.getAttribute("hx-headers"))["X-CSRF-Token"];
  const progress = document.getElementById("s3-progress");
  input.addEventListener("change", async () => {
    for (const file of input.files) {
      const key = input.dataset.prefix + file.name;
      const base = `${body.dataset.prefix}/s3/${encodeURIComponent(input.dataset.bucket)}/uploads`;
      const q = `key=${encodeURIComponent(key)}`;
      const headers = { "X-CSRF-Token": csrf };
      const started = await fetch(`${base}?${q}`, { method: "POST", headers: { ...headers, "X-Content-Type": file.type } });
      if (!started.ok) { progress.textContent = `${file.name}: ${await started.text()}`; return; }
      const { uploadId } = await started.json();
      const parts = [];
      for (let n = 1, offset = 0; offset < file.size || n === 1; n++, offset += PART_BYTES) {
        progress.textContent = `${file.name}: ${Math.round((100 * offset) / Math.max(file.size, 1))} %`;
        const r = await fetch(`${base}/${encodeURIComponent(uploadId)}/${n}?${q}`, {
          method: "PUT", headers, body: file.slice(offset, offset + PART_BYTES),
        });
        if (!r.ok) { progress.textContent = `${file.name}: ${await r.text()}`; return; }
        parts.push({ number: n, etag: (await r.json()).etag });
      }
      const done = await fetch(`${base}/${encodeURIComponent(uploadId)}/complete?${q}`, {
        method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify({ parts }),
      });
      if (!done.ok) { progress.textContent = `${file.name}: ${await done.text()}`; return; }
    }
    window.location.reload();
  });
}

// ----------------------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", () => {
  const page = document.getElementById("job-page");
  if (page) jobPage(page);
  const rows = document.querySelector("tbody[data-live]");
  if (rows) liveRows(rows);
  const channels = document.getElementById("channels");
  if (channels) channelEditor(channels);
  const tuning = document.getElementById("tuning-panel");
  if (tuning) {
    tuningCharts(tuning);
    if (tuning.dataset.live) live(tuning, { panel: (e) => { swap(tuning, e.data); tuningCharts(tuning); } });
  }
  const s3File = document.getElementById("s3-file");
  if (s3File) s3Upload(s3File);
  const ranges = document.querySelector("table.tuning-ranges");
  if (ranges) rangeRows(ranges);
  const compare = document.getElementById("chart-compare");
  if (compare) compareChart(compare, JSON.parse(document.getElementById("compare-curves").textContent));
  const endpoint = document.getElementById("endpoint-status-panel");
  if (endpoint) {
    const source = new EventSource(endpoint.dataset.events);
    source.addEventListener("status", (e) => {
      swap(endpoint, e.data);
      const button = document.getElementById("try-submit");
      if (button) button.disabled = !endpoint.querySelector(".status-InService");
    });
    window.addEventListener("beforeunload", () => source.close());
  }
  // a field the server marked invalid gets the focus, so the keyboard lands where the fix is
  const invalid = document.querySelector(".invalid input, .invalid select");
  if (invalid) invalid.focus();
});
