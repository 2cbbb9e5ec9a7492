// chipsweep web UI: live sweep progress, the frontier explorer, diffs, spec validation. Reads /ui/data/*.
"use strict";
const chipsweep = (() => {
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const num = (v, d = 0) => (v === null || v === undefined ? "" : Number(v).toLocaleString(undefined, {maximumFractionDigits: d}));
  const eta = (s) => (s === null || s === undefined ? "" : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

  async function get(url, options) {
    const r = await fetch(url, Object.assign({credentials: "same-origin"}, options || {}));
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(body.error || r.statusText), {body, status: r.status});
    return body;
  }

  // ---- sweeps ------------------------------------------------------------------------------------
  function liveSweeps(table) {
    const tick = async () => {
      let rows;
      try { rows = await get("/ui/data/sweeps"); } catch (e) { return; }
      const body = table.tBodies[0];
      if (!rows.length) return;
      body.innerHTML = rows.map((s) => `<tr data-sweep="${esc(s.sweep_id)}@${s.version}" data-state="${esc(s.state)}">
        <td><a href="/ui/sweeps/${encodeURIComponent(s.sweep_id + "@" + s.version)}">${esc(s.sweep_id)}</a></td>
        <td>${esc(s.kind)}</td><td>${s.version}</td><td class="state ${esc(s.state)}">${esc(s.state)}</td>
        <td><progress max="1" value="${s.progress}"></progress> <span class="pct">${Math.round(100 * s.progress)} %</span></td>
        <td class="num">${num(s.configurations)}</td><td class="num rate">${num(s.configs_per_s)}</td>
        <td class="num eta">${eta(s.eta_s)}</td><td class="num">${num(s.rows_written)}</td></tr>`).join("");
      if (rows.some((s) => s.state === "queued" || s.state === "running")) setTimeout(tick, 1000);
    };
    setTimeout(tick, 1000);
  }

  function liveSweep(id, state) {
    if (state !== "queued" && state !== "running") return;
    const tick = async () => {
      const s = await get(`/ui/data/sweeps/${encodeURIComponent(id)}`);
      document.getElementById("progress").value = s.progress;
      document.getElementById("done").textContent = s.chunks_done;
      document.getElementById("failed").textContent = s.chunks_failed;
      document.getElementById("rows").textContent = num(s.rows_written);
      const version = document.querySelector(`#versions tr[data-version="${s.version}"] .version-state`);
      if (version) version.textContent = s.state;
      document.getElementById("rate").textContent = `${num(s.configs_per_s)} configurations/s` + (s.eta_s ? `, ${eta(s.eta_s)} left` : "");
      const st = document.getElementById("state");
      st.textContent = s.state; st.className = `state ${s.state}`;
      if (s.state === "queued" || s.state === "running") setTimeout(tick, 1000); else location.reload();
    };
    setTimeout(tick, 1000);
  }

  async function cancel(id) {
    // a sweep that ended since the page was drawn is refused (409): the reload shows how it ended
    try { await get(`/ui/data/sweeps/${encodeURIComponent(id)}/cancel`, {method: "POST"}); } finally { location.reload(); }
  }

  async function resume(id) {
    await get(`/ui/data/sweeps/${encodeURIComponent(id)}/resume`, {method: "POST"});
    location.reload();
  }

  // ---- frontiers ---------------------------------------------------------------------------------
  function plot(div, figure, note) {
    Plotly.react(div, figure.data, figure.layout, {displaylogo: false, responsive: true});
    div.on("plotly_click", (ev) => {
      const p = ev.points[0];
      if (!p || p.customdata === undefined) return;
      const text = typeof p.customdata === "string" ? p.customdata : JSON.stringify(p.customdata);
      const out = document.getElementById("copied");
      if (out) out.textContent = text;
      if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    });
    div.dataset.frontierPoints = figure.data.filter((t) => t.meta === "frontier").reduce((n, t) => n + t.x.length, 0);
  }

  const configurations = (n) => `${num(n)} configuration${n === 1 ? "" : "s"}`;

  // the frontier first (drawn as soon as it is known), then the same chart over a sample of the feasible rows
  async function drawFrontier(div, params, note) {
    const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined));
    note.textContent = "computing the frontier…";
    note.className = "note";  // a refusal before this one left its colour on the note
    let res;
    try { res = await get(`/ui/data/frontier?${qs}&candidates=0`); } catch (e) { note.textContent = e.message; note.className = "note error"; return null; }
    if (!res.figure) { Plotly.purge(div); note.textContent = res.message; return res; }
    plot(div, res.figure, note);
    div.dataset.stage = "frontier";
    note.textContent = `${configurations(res.rows.length)} on the frontier (${res.seconds} s); drawing the feasible ones behind it…`;
    get(`/ui/data/frontier?${qs}`).then((full) => {
      if (!full.figure) return;
      plot(div, full.figure, note);
      div.dataset.stage = "candidates";
      note.textContent = `${configurations(full.rows.length)} on the frontier, over ${num(full.candidates_total)} feasible (${full.seconds} s).` +
        (full.repeats ? ` ${configurations(full.repeats)} identical to one on it but for idx (a swept axis that does not apply to them) left out.` : "") +
        (full.unplaced ? ` ${full.unplaced.charAt(0).toUpperCase()}${full.unplaced.slice(1)}` : "");
    }).catch((e) => { note.textContent += ` (${e.message})`; });
    return res;
  }

  function rowsTable(table, rows, columns) {
    if (!rows.length) { table.innerHTML = ""; return; }
    const cols = columns || Object.keys(rows[0]);
    table.innerHTML = `<thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>` +
      rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(typeof r[c] === "number" ? Number(r[c].toPrecision(5)) : r[c])}</td>`).join("")}</tr>`).join("") + "</tbody>";
  }

  let lake = null;
  const kindOf = (q) => (q === "pareto_training" ? "training" : "inference");

  function fillFilters(params) {
    const q = document.getElementById("query").value;
    const kind = kindOf(q);
    const models = q === "pareto_edge" ? [...new Set([...(lake.inference.models || []), ...(lake.asic.models || [])])].sort() : (lake[kind].models || []);
    const model = document.getElementById("model");
    const want = params.model || model.value || models[0] || "";
    model.innerHTML = models.map((m) => `<option ${m === want ? "selected" : ""}>${esc(m)}</option>`).join("");
    const chips = document.getElementById("chips");
    const chosen = new Set((params.chips || "").split(",").filter(Boolean));
    chips.innerHTML = (lake[kind].chips || []).map((c) => `<option ${chosen.has(c) ? "selected" : ""}>${esc(c)}</option>`).join("");
    const sweep = document.getElementById("sweep");
    const s = params.sweep || sweep.value;
    if (!sweep.dataset.watched) {  // a version belongs to its sweep: another sweep starts at its latest
      sweep.dataset.watched = "1";
      sweep.addEventListener("change", () => { document.getElementById("version").value = ""; });
    }
    sweep.innerHTML = `<option value="">(latest of every sweep)</option>` + lake.sweeps.map((n) => `<option ${n === s ? "selected" : ""}>${esc(n)}</option>`).join("");
    for (const el of document.querySelectorAll(".training-only")) el.style.display = q === "pareto_training" ? "" : "none";
    for (const el of document.querySelectorAll(".serving-only")) el.style.display = q === "pareto_serving" ? "" : "none";
    for (const el of document.querySelectorAll(".edge-only")) el.style.display = q === "pareto_edge" ? "" : "none";
    for (const el of document.querySelectorAll(".fitted-filter")) el.style.display = q === "pareto_training" || q === "pareto_serving" ? "" : "none";
    for (const el of document.querySelectorAll(".objectives")) el.style.display = el.dataset.query === q ? "inline" : "none";
  }

  function filterParams() {
    const form = document.getElementById("filters");
    const out = {};
    for (const [k, v] of new FormData(form).entries()) if (k !== "chips" && v !== "") out[k] = v;
    const chips = [...document.getElementById("chips").selectedOptions].map((o) => o.value);
    if (chips.length) out.chips = chips.join(",");
    const q = out.query;
    if (q !== "pareto_training") { delete out.cost_basis; delete out.precision; delete out.max_days; delete out.max_cost_usd; }
    if (q !== "pareto_training" && q !== "pareto_serving") delete out.calibration;
    if (q !== "pareto_serving") { delete out.ttft_max_s; delete out.tpot_max_s; }
    if (q === "pareto_edge") delete out.chips;
    if (q !== "pareto_edge") delete out.cost_scope;
    if (q === "pareto_edge" || !out.sweep) delete out.version;  // a version of the chosen sweep only
    return out;
  }

  async function explore(ev, given) {
    if (ev) ev.preventDefault();
    const params = given || filterParams();
    history.replaceState(null, "", `/ui/frontier?${new URLSearchParams(params)}`);
    const res = await drawFrontier(document.getElementById("chart"), params, document.getElementById("chart-note"));
    if (res) rowsTable(document.getElementById("frontier-rows"), res.rows);
  }

  async function initExplorer(params) {
    // a link that names a model draws at once; the filters fill in beside it
    const drawing = params.model ? explore(null, Object.assign({query: "pareto_training"}, params)) : null;
    lake = await get("/ui/data/lake");
    fillFilters(params);
    document.getElementById("query").addEventListener("change", () => fillFilters({}));
    if (!drawing && document.getElementById("model").value) explore();
  }

  // ---- diff, catalog, submit ---------------------------------------------------------------------
  async function diff(ev) {
    if (ev) ev.preventDefault();
    const params = {sweep: document.getElementById("diff-sweep").value, from_version: document.getElementById("from_version").value,
                    to_version: document.getElementById("to_version").value};
    const div = document.getElementById("chart");
    const note = document.getElementById("diff-note");
    let res;
    try {
      res = await get(`/ui/data/diff?${new URLSearchParams(params)}`);
    } catch (e) {  // a refusal (no such version, a blank one) says why, where the chart would be
      Plotly.purge(div);
      div.textContent = "";
      rowsTable(document.getElementById("diff-rows"), []);
      note.textContent = e.message;
      note.className = "note error";
      return;
    }
    note.className = "note";
    if (res.figure) plot(div, res.figure); else { Plotly.purge(div); div.textContent = "The frontier did not move between these versions."; }
    note.textContent = res.note || "";
    const serving = res.rows.some((r) => r.kind === "serving");
    const training = res.rows.some((r) => r.kind === "training");
    rowsTable(document.getElementById("diff-rows"), res.rows, ["change", "kind", "model", "chip", "layout", "version", "idx",
      ...(serving ? ["output_tokens_per_s_per_chip", "tokens_per_s_per_user", "energy_per_token_j"]
        : training ? ["cost_basis", "time_to_train_days", "cost_usd"]
        : ["decode_tokens_per_s", "energy_per_token_j", "unit_cost_usd", "cost_scope"])]);
  }

  function filterCatalog(text) {
    const t = text.toLowerCase();
    for (const el of document.querySelectorAll("details.entry")) el.style.display = el.dataset.id.toLowerCase().includes(t) ? "" : "none";
  }

  function problems(body) {
    const list = body.problems || [body];
    return `<p class="error">${esc(body.error || "refused")}</p><ul>` + list.map((p) =>
      `<li class="problem" data-field="${esc(p.field)}"><code>${esc(p.field)}</code> = ${esc(JSON.stringify(p.value))}: ${p.message ? esc(p.message) + ";" : ""}` +
      ` <span class="allowed">allowed: ${esc(p.allowed)}</span></li>`).join("") + "</ul>";
  }

  async function validateSpec() {
    const out = document.getElementById("result");
    const r = await fetch("/ui/data/validate", {method: "POST", credentials: "same-origin", body: document.getElementById("spec").value,
                                                headers: {"Content-Type": "application/yaml"}});
    const body = await r.json();
    out.innerHTML = body.ok ? `<p class="ok">valid: ${esc(body.name)} (${esc(body.kind)}), ${num(body.configurations)} configurations</p>` : problems(body);
    return body.ok;
  }

  async function submitSpec(ev) {
    ev.preventDefault();
    const out = document.getElementById("result");
    const r = await fetch("/ui/data/submit", {method: "POST", credentials: "same-origin", body: document.getElementById("spec").value,
                                      headers: {"Content-Type": "application/yaml"}});
    const body = await r.json();
    if (!r.ok) { out.innerHTML = problems(body); return; }
    location.href = `/ui/sweeps/${encodeURIComponent(body.sweep_id + "@" + body.version)}`;
  }

  return {liveSweeps, liveSweep, cancel, resume, drawFrontier, explore, initExplorer, diff, filterCatalog, validateSpec, submitSpec};
})();
