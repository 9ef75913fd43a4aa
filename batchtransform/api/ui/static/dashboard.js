// The dashboard's live parts: the jobs list and a job's page refresh themselves from the
// JSON views under /ui/api/, logs are tailed then followed with CloudWatch forward tokens,
// and charts are drawn as SVG. Text from the server only ever goes in through textContent.
"use strict";

const REFRESH_MS = 3000;
const LOG_POLL_MS = 1500;
const SVG = "http://www.w3.org/2000/svg";

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) {
    window.location.assign("/ui/login?next=" + encodeURIComponent(window.location.pathname));
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(url + ": " + response.status);
  return response.json();
}

function el(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function fillTable(tbody, items, toCells, emptyText, columns) {
  tbody.replaceChildren();
  for (const item of items) tbody.append(row(toCells(item)));
  if (!items.length) {
    const tr = row([]);
    tr.className = "empty";
    tr.append(el("td", emptyText, { colspan: String(columns) }));
    tbody.append(tr);
  }
}

function jobLink(name) {
  const td = el("td", null, { class: "name" });
  td.append(el("a", name, { href: "/ui/jobs/" + encodeURIComponent(name) }));
  return td;
}

function objectsCell(job) {
  const td = el("td", null, { class: "objects" });
  td.append(el("progress", null, { max: String(job.objects_total || 1), value: String(job.objects_done), title: job.percent + "%" }));
  td.append(" ", el("span", job.objects_done + "/" + job.objects_total));
  return td;
}

function jobCells(job) {
  const status = el("td", job.status, { class: "status status-" + job.status });
  const records = job.records + (job.records_failed ? " (" + job.records_failed + " failed)" : "");
  return [
    jobLink(job.name), status, objectsCell(job), el("td", records, { class: "records" }),
    el("td", job.records_per_second, { class: "rate" }),
    el("td", job.eta_seconds === null ? "" : job.eta_seconds + " s", { class: "eta" }),
    el("td", job.instances + " × " + job.instance_type, { class: "instances" }),
    el("td", job.queue_position || "", { class: "queue" }),
    el("td", job.start, { class: "start" }), el("td", job.end, { class: "end" }),
    el("td", job.failure_reason, { class: "reason" }),
  ];
}

function refreshJobs() {
  const tbody = document.getElementById("job-rows");
  const tick = async () => {
    try {
      const jobs = await getJSON("/ui/api/jobs" + window.location.search);
      tbody.replaceChildren();
      for (const job of jobs) {
        const tr = row(jobCells(job));
        tr.dataset.job = job.name;
        tr.dataset.status = job.status;
        tbody.append(tr);
      }
      const filtered = Array.from(new URLSearchParams(window.location.search).values()).some(Boolean);
      if (!jobs.length) fillTable(tbody, [], jobCells, filtered ? "No jobs match these filters." : "No jobs.", 11);
      tbody.dataset.refreshed = String(Date.now());
    } catch (error) { console.warn(error); }
  };
  setInterval(tick, REFRESH_MS);
}

// --- one job -------------------------------------------------------------------------

function refreshJob(name) {
  const base = "/ui/api/jobs/" + encodeURIComponent(name);
  const tick = async () => {
    try {
      const job = await getJSON(base);
      const r = job.row;
      const status = document.getElementById("job-status");
      status.textContent = r.status;
      status.className = "status status-" + r.status;
      const bar = document.getElementById("job-progress");
      bar.max = r.objects_total || 1;
      bar.value = r.objects_done;
      document.getElementById("job-objects").textContent = r.objects_done + "/" + r.objects_total;
      document.getElementById("job-records").textContent = r.records;
      document.getElementById("job-records-failed").textContent = r.records_failed;
      document.getElementById("job-rate").textContent = r.records_per_second;
      const stop = document.getElementById("stop-job");
      if (stop && !r.can_stop) stop.closest("form").remove();
      fillTable(document.getElementById("in-flight"), job.in_flight,
        (i) => [i.object, i.instance, i.records, i.bytes_in], "None.", 4);
      fillTable(document.getElementById("failed-objects"), job.failures,
        (i) => [i.object, i.reason], "None.", 2);
      const shown = job.committed.length;
      document.getElementById("committed-count").textContent =
        job.committed_total > shown ? "(the latest " + shown + " of " + job.committed_total + ")" : "";
      fillTable(document.getElementById("committed"), job.committed,
        (i) => [i.output, i.records, i.failed_records, i.bytes_in, i.bytes_out, i.time], "None yet.", 6);
      await drawCharts(base);
    } catch (error) { console.warn(error); }
  };
  tick();
  setInterval(tick, REFRESH_MS);
}

async function drawCharts(base) {
  const samples = await getJSON(base + "/samples");
  lineChart(document.getElementById("throughput-chart"), "records/s",
    [{ label: "records/s", points: samples.throughput.map((p) => [p.time, p.records_per_second]) }]);
  const holder = document.getElementById("instance-charts");
  holder.replaceChildren();
  for (const [instance, points] of Object.entries(samples.instances)) {
    const figure = el("figure", null, { class: "chart" });
    const last = points[points.length - 1] || {};
    const memory = Number.isFinite(last.memory_bytes) ? " · " + (last.memory_bytes / 1048576).toFixed(0) + " MiB" : "";
    figure.append(el("figcaption", instance + memory));
    holder.append(figure);
    lineChart(figure, "percent", [
      { label: "CPU %", points: points.map((p) => [p.time, p.cpu_percent]) },
      { label: "memory %", points: points.map((p) => [p.time, p.memory_percent]) },
    ]);
  }
}

// A line chart of [time, value] series, scaled to its own range; no axes library needed.
function lineChart(holder, unit, series) {
  const width = 640, height = 160, pad = 32;
  for (const old of holder.querySelectorAll("svg, p.empty")) old.remove();
  const all = series.flatMap((s) => s.points.filter((p) => Number.isFinite(p[1])));
  if (all.length < 2) {
    holder.append(el("p", "No samples yet.", { class: "empty" }));
    return;
  }
  const x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  const y1 = Math.max(1, ...all.map((p) => p[1]));
  const sx = (x) => pad + ((x - x0) / Math.max(x1 - x0, 1e-9)) * (width - 2 * pad);
  const sy = (y) => height - pad - (y / y1) * (height - 2 * pad);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.setAttribute("role", "img");
  svg.append(svgText(4, pad - 8, y1.toFixed(1) + " " + unit), svgText(4, height - pad, "0"));
  svg.append(svgText(pad, height - 8, Math.round(x1 - x0) + " s shown"));
  series.forEach((s, index) => {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", s.points.map((p) => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" "));
    line.setAttribute("class", "series series-" + index);
    svg.append(line, svgText(width - 150, 16 + 14 * index, s.label, "legend series-" + index));
  });
  holder.append(svg);
}

function svgText(x, y, text, className) {
  const node = document.createElementNS(SVG, "text");
  node.setAttribute("x", x);
  node.setAttribute("y", y);
  if (className) node.setAttribute("class", className);
  node.textContent = text;
  return node;
}

// --- logs: the tail of a stream, then what is written after it ---------------------------

function followLogs(name) {
  const base = "/ui/api/jobs/" + encodeURIComponent(name) + "/logs";
  const select = document.getElementById("log-stream");
  const lines = document.getElementById("log-lines");
  const follow = document.getElementById("log-follow");
  let stream = "", token = "", busy = false;
  const refreshStreams = async () => {
    const { streams } = await getJSON(base);
    const known = new Set(Array.from(select.options, (o) => o.value));
    for (const s of streams) if (!known.has(s)) select.append(el("option", s, { value: s }));
    if (!stream && streams.length) { stream = streams[0]; select.value = stream; lines.replaceChildren(); }
    if (!streams.length) lines.textContent = "No log streams yet: they appear when the job's instances start.";
  };
  const read = async () => {
    if (busy || !stream || (token && !follow.checked)) return;
    busy = true;
    const reading = stream;
    try {
      const query = "?stream=" + encodeURIComponent(reading) + (token ? "&token=" + encodeURIComponent(token) : "");
      const page = await getJSON(base + query);
      if (reading !== stream) return;  // another stream was chosen meanwhile
      for (const event of page.events) lines.append(el("span", event.time + "  " + event.message + "\n"));
      if (page.events.length) lines.scrollTop = lines.scrollHeight;
      token = page.token;
    } finally { busy = false; }
  };
  select.addEventListener("change", () => { stream = select.value; token = ""; lines.replaceChildren(); read(); });
  const tick = async () => {
    try { await refreshStreams(); await read(); } catch (error) { console.warn(error); }
  };
  tick();
  setInterval(tick, LOG_POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "jobs") refreshJobs();
  if (page === "job") {
    refreshJob(document.body.dataset.job);
    followLogs(document.body.dataset.job);
  }
});
