// The console: launch, tasks, task detail and operations, on the public API and websocket only.
import { Api } from "./api.js";
import { Watcher } from "./watch.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const PAGE_SIZE = 20;
const OPS_REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  watcher: null,
  types: [],
  watches: new Map(), // task id -> watch from a submit answer, so a new task opens at once
  leave: () => {}, // undoes what the current view started (subscriptions, timers)
  pages: [null], // cursors of the pages seen; the last is the next page's
};

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = error.message || String(error);
  box.hidden = false;
  if (error.status === 401) signOut(false);
}

async function guarded(action) {
  showError(null);
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  }
}

function percent(progress) {
  return `${Math.round((progress && progress.percent) || 0)}%`;
}

function fmtTime(iso) {
  return iso ? iso.replace("T", " ").replace("Z", "") : "—";
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

// --- the API key --------------------------------------------------------------------------

// Where the API is: config.json beside the page (python -m console writes it), else this origin.
async function apiBase() {
  try {
    const response = await fetch("config.json");
    if (response.ok) return (await response.json()).api;
  } catch {
    // served without one: the API is behind the same origin
  }
  return location.origin;
}

async function signIn(key) {
  state.api = new Api(await apiBase(), key);
  const types = await guarded(() => state.api.taskTypes());
  if (!types) {
    state.api = null;
    return;
  }
  // A cheap authenticated call tells a wrong key at once, before any view.
  const probe = await guarded(() => state.api.list({ limit: 1 }));
  if (!probe) {
    state.api = null;
    return;
  }
  sessionStorage.setItem("taskcast-api-key", key);
  state.types = types.task_types;
  state.watcher = new Watcher(state.api, (s, message) => {
    if (s === "error") showError(new Error(`the realtime service refused: ${message}`));
    const connection = $("detail-connection");
    connection.textContent = s === "live" ? "live" : s === "reconnecting" ? "reconnecting…" : connection.textContent;
  });
  fillTypeSelects();
  $("nav").hidden = false;
  $("key-form").hidden = true;
  $("key-in-use").hidden = false;
  $("api-key").value = "";
  try {
    await state.api.overview();
    $("nav-ops").hidden = false;
  } catch (error) {
    // 403: not an operator's key; 503: no figures yet, but an operator's key all the same.
    $("nav-ops").hidden = error.status !== 503;
    if (error.status !== 403 && error.status !== 503) showError(error);
  }
  route();
}

function signOut(clear = true) {
  state.leave();
  if (state.watcher) state.watcher.close();
  state.api = null;
  sessionStorage.removeItem("taskcast-api-key");
  $("nav").hidden = true;
  $("key-form").hidden = false;
  $("key-in-use").hidden = true;
  if (clear) showError(null);
  show("signin");
}

function fillTypeSelects() {
  const launch = $("launch-type");
  const filter = $("filter-type");
  launch.replaceChildren();
  filter.replaceChildren(el("option", { value: "", textContent: "any" }));
  for (const type of state.types) {
    launch.append(el("option", { value: type.name, textContent: type.name }));
    filter.append(el("option", { value: type.name, textContent: type.name }));
  }
  fillPayload();
}

// --- views --------------------------------------------------------------------------------

function show(view) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  for (const link of document.querySelectorAll("#nav a[data-view]")) {
    link.classList.toggle("active", link.dataset.view === view);
  }
}

function route() {
  state.leave();
  state.leave = () => {};
  state.loading = null; // a list still loading is not drawn, nor its rows watched
  if (!state.api) return show("signin");
  const [, view, arg] = location.hash.split("/");
  if (view === "task" && arg) {
    let taskId;
    try {
      taskId = decodeURIComponent(arg);
    } catch {
      return showError(new Error(`the address names no task: ${arg}`));
    }
    return openTask(taskId);
  }
  if (view === "tasks") return openTasks();
  if (view === "ops") return openOps();
  return openLaunch();
}

// Launch: the type's defaults as the payload, options, submit; the new task opens live.

function defaults(schema) {
  const payload = {};
  for (const [name, property] of Object.entries((schema && schema.properties) || {})) {
    if ("default" in property) payload[name] = property.default;
  }
  return payload;
}

function fillPayload() {
  const type = state.types.find((t) => t.name === $("launch-type").value);
  if (!type) return;
  $("launch-payload").value = JSON.stringify(defaults(type.payload_schema), null, 2);
  $("launch-description").textContent = type.description || "";
}

function openLaunch() {
  show("launch");
}

async function launch(event) {
  event.preventDefault();
  let payload;
  try {
    payload = JSON.parse($("launch-payload").value || "{}");
  } catch (error) {
    return showError(new Error(`the payload is not valid JSON: ${error.message}`));
  }
  const body = { type: $("launch-type").value, payload };
  if ($("launch-priority").value) body.priority = $("launch-priority").value;
  if ($("launch-delay").value) body.delay_seconds = Number($("launch-delay").value);
  const answer = await guarded(() => state.api.submit(body, $("launch-idempotency").value.trim()));
  if (!answer) return;
  state.watches.set(answer.task.task_id, answer.watch);
  location.hash = `#/task/${answer.task.task_id}`;
}

// Tasks: server-side filters and cursor pages; the rows of unfinished tasks update live.

function filters() {
  const since = $("filter-since").value;
  const until = $("filter-until").value;
  return {
    status: $("filter-status").value,
    type: $("filter-type").value,
    // datetime-local has no zone: the page shows and takes UTC, like the API.
    since: since ? `${since}Z` : "",
    until: until ? `${until}Z` : "",
    limit: String(PAGE_SIZE),
  };
}

function openTasks() {
  show("tasks");
  state.pages = [null];
  loadPage(0);
}

async function loadPage(index) {
  state.leave();
  state.leave = () => {};
  const cursor = state.pages[index];
  // Only the latest request's answer is shown: an earlier one may arrive after it.
  const loading = (state.loading = {});
  const table = $("tasks-table");
  table.setAttribute("aria-busy", "true");
  const page = await guarded(() => state.api.list({ ...filters(), cursor: cursor || "" }));
  if (loading !== state.loading) return;
  table.setAttribute("aria-busy", "false");
  if (!page) return;
  state.pages = [...state.pages.slice(0, index + 1), page.next_cursor];
  $("page-first").disabled = index === 0;
  $("page-next").disabled = !page.next_cursor;
  $("page-number").textContent = `page ${index + 1}`;
  renderRows(page.tasks, loading);
}

function renderRows(tasks, loading) {
  const body = $("tasks-body");
  body.replaceChildren();
  $("tasks-empty").hidden = tasks.length > 0;
  const live = [];
  for (const task of tasks) {
    const status = el("span", { className: `status ${task.status}`, textContent: task.status });
    const progress = el("td", { textContent: percent(task.progress) });
    const row = el(
      "tr",
      { className: "task-row" },
      el("td", {}, el("a", { href: `#/task/${task.task_id}` }, el("code", { textContent: task.task_id }))),
      el("td", { textContent: task.type }),
      el("td", {}, status),
      progress,
      el("td", { textContent: fmtTime(task.created_at) }),
    );
    row.dataset.taskId = task.task_id;
    body.append(row);
    if (!TERMINAL.has(task.status)) {
      live.push(
        state.watcher
          .watch(task.task_id, null, (message) => updateRow(status, progress, message))
          .catch(showError),
      );
    }
  }
  Promise.all(live).then((stops) => {
    const stopAll = () => { for (const stop of stops) if (stop) stop(); };
    if (loading !== state.loading) return stopAll(); // another page is shown by now
    const previous = state.leave;
    state.leave = () => { previous(); stopAll(); };
  });
}

function updateRow(status, progress, message) {
  const task = message.op === "snapshot" ? message.task : message.op === "event" ? message.event : message;
  if (message.op === "error") return showError(new Error(message.message));
  if (task.status) {
    status.className = `status ${task.status}`;
    status.textContent = task.status;
  }
  if (task.progress) progress.textContent = percent(task.progress);
}

async function findTask(event) {
  event.preventDefault();
  const id = $("find-id").value.trim();
  if (!id) return;
  // Opened only if it is this key's: the detail view asks the API, which says 404 otherwise.
  const found = await guarded(() => state.api.get(id));
  if (found) location.hash = `#/task/${found.task.task_id}`;
}

// Task detail: the record, then every event live; resumes from its cursor after a drop.

async function openTask(taskId) {
  show("task");
  $("detail-id").textContent = taskId;
  $("detail-events").replaceChildren();
  $("detail-connection").textContent = "";
  for (const id of ["detail-status", "detail-message", "detail-type", "detail-attempt", "detail-payload",
    "hop-accepted", "hop-queued", "hop-started", "hop-ended"]) $(id).textContent = "";
  $("detail-result").textContent = "—";
  // Leaving before the awaits below are done stops what they start, and draws nothing.
  const view = { taskId, task: null, seen: new Set(), backfilled: false, left: false, stop: null };
  state.leave = () => {
    view.left = true;
    if (view.stop) view.stop();
  };
  const answer = await guarded(() => state.api.get(taskId));
  if (!answer || view.left) return;
  view.task = answer.task;
  renderTask(view);
  const watch = state.watches.get(taskId) || null;
  state.watches.delete(taskId);
  view.stop = await guarded(() => state.watcher.watch(taskId, watch, (m) => onTaskMessage(view, m)));
  if (view.left && view.stop) view.stop();
  $("detail-cancel").onclick = () => cancelTask(view);
  $("detail-resubmit").onclick = () => resubmitTask(view);
}

function onTaskMessage(view, message) {
  if (view.left) return;
  if (message.op === "error") return showError(new Error(message.message));
  if (message.op === "snapshot") {
    view.task = message.task;
    // The first snapshot starts after the events so far: read them once, from the log's start.
    if (!view.backfilled && message.cursor.epoch !== null && message.cursor.seq > 0) {
      view.backfilled = true;
      state.watcher.rewind(view.taskId, { epoch: message.cursor.epoch, seq: 0 });
    }
  } else if (message.op === "event") {
    addEvent(view, message.event);
  } else if (message.op === "end") {
    view.task = { ...view.task, status: message.status, result: message.result, error: message.error };
    $("detail-connection").textContent = "ended";
    // The record has the end's times; the events may not all have been seen.
    state.api.get(view.taskId).then((a) => {
      if (view.left) return;
      view.task = a.task;
      renderTask(view);
    }).catch(showError);
  }
  renderTask(view);
}

function addEvent(view, event) {
  const key = `${event.epoch}:${event.seq}`;
  if (view.seen.has(key)) return;
  view.seen.add(key);
  const t = view.task;
  // Events are the state from here on: apply each in order over the record.
  view.task = { ...t, status: event.status, attempt: event.attempt, progress: event.progress || t.progress };
  if (event.status === "queued" && !view.queuedAt) view.queuedAt = event.ts;
  if (event.result !== undefined) view.task.result = event.result;
  if (event.error) view.task.error = event.error;
  const what = event.kind === "custom" ? `${event.name} ${JSON.stringify(event.data)}` :
    event.kind === "progress" ? `${percent(event.progress)} ${event.progress.message || ""}` : event.status;
  const item = el("li", { textContent: `#${event.seq} ${fmtTime(event.ts)} ${event.kind}: ${what}` });
  item.dataset.seq = String(event.seq);
  item.dataset.kind = event.kind;
  // In seq order even when history arrives after a live event.
  const list = $("detail-events");
  const after = [...list.children].find((li) => Number(li.dataset.seq) > event.seq);
  list.insertBefore(item, after || null);
}

function renderTask(view) {
  const task = view.task;
  const status = $("detail-status");
  status.textContent = task.status;
  status.className = `status ${task.status}`;
  $("detail-bar").style.width = `${(task.progress && task.progress.percent) || 0}%`;
  $("detail-message").textContent = (task.progress && task.progress.message) || "";
  $("detail-type").textContent = task.type;
  $("detail-attempt").textContent = `${task.attempt} of ${task.max_attempts}`;
  $("detail-payload").textContent = JSON.stringify(task.payload, null, 2);
  $("hop-accepted").textContent = fmtTime(task.created_at);
  $("hop-queued").textContent = fmtTime(view.queuedAt);
  $("hop-started").textContent = fmtTime(task.started_at);
  $("hop-ended").textContent = fmtTime(task.finished_at);
  if (task.status === "succeeded") $("detail-result").textContent = JSON.stringify(task.result, null, 2);
  else if (task.error) $("detail-result").textContent = `${task.error.code || "error"}: ${task.error.message}`;
  $("detail-cancel").hidden = TERMINAL.has(task.status);
  $("detail-resubmit").hidden = !(task.status === "failed" || task.status === "cancelled");
}

async function cancelTask(view) {
  const answer = await guarded(() => state.api.cancel(view.taskId));
  if (answer) $("detail-connection").textContent = answer.cancel === "ended" ? "had already ended" : "cancel requested";
}

async function resubmitTask(view) {
  const answer = await guarded(() => state.api.resubmit(view.taskId));
  if (!answer) return;
  state.watches.set(answer.task.task_id, answer.watch);
  location.hash = `#/task/${answer.task.task_id}`;
}

// Operations (operators' keys): the sweeper's last report and the dead letters.

function openOps() {
  show("ops");
  refreshOps(true);
  // The figures every few seconds; the dead letters only when asked (Refresh, or after an
  // action), as each listing takes every dead message and puts it back.
  const timer = setInterval(() => refreshOps(false), OPS_REFRESH_MS);
  state.leave = () => clearInterval(timer);
}

async function refreshOps(withDeadLetters) {
  const [overview, dead] = await Promise.all([
    state.api.overview().catch((error) => { showError(error); return null; }),
    withDeadLetters ? state.api.deadLetters().catch((error) => { showError(error); return null; }) : null,
  ]);
  if (overview) renderOverview(overview.overview);
  if (dead) renderDead(dead.dead_letters);
}

function renderOverview(o) {
  $("ops-updated").textContent = fmtTime(o.updated_at);
  $("ops-in-flight").textContent = o.in_flight;
  $("ops-workers-alive").textContent = o.workers.length;
  $("ops-workers-busy").textContent = o.workers.filter((w) => w.state === "busy").length;
  $("ops-broker-tasks").textContent = o.broker.tasks ?? "?";
  $("ops-broker-dead").textContent = o.broker.dead ?? "?";
  $("ops-queues").replaceChildren(...o.queues.map((q) => el("tr", {},
    el("td", { textContent: q.name }), el("td", { textContent: q.queued }),
    el("td", { textContent: q.started }), el("td", { textContent: q.scheduled }))));
  $("ops-workers").replaceChildren(...o.workers.map((w) => el("tr", {},
    el("td", { textContent: w.name }), el("td", { textContent: w.state }),
    el("td", { textContent: w.queues.join(", ") }), el("td", { textContent: w.task_id || "" }))));
}

function renderDead(messages) {
  $("dead-empty").hidden = messages.length > 0;
  $("dead-body").replaceChildren(...messages.map((m) => {
    const replay = el("button", { type: "button", textContent: "Replay", className: "dead-replay" });
    replay.onclick = () => replayDead([m.message_id]);
    replay.disabled = !m.message_id;
    const row = el("tr", { className: "dead-row" },
      el("td", {}, el("code", { textContent: m.message_id || "—" })),
      el("td", { textContent: m.type || "—" }),
      el("td", { textContent: m.reason }),
      el("td", {}, replay));
    row.dataset.messageId = m.message_id || "";
    return row;
  }));
}

async function replayDead(ids) {
  const answer = await guarded(() => state.api.replayDead(ids));
  if (!answer) return;
  const again = answer.resubmitted.map((r) => `${r.task_id} → new task ${r.new_task_id}`);
  const skipped = answer.skipped.map((s) => `${s.message_id} (${s.error})`);
  $("dead-outcome").textContent = `replayed ${answer.replayed.length}` +
    (again.length ? `; submitted again: ${again.join(", ")}` : "") +
    (skipped.length ? `; not replayed, left dead: ${skipped.join(", ")}` : "");
  refreshOps(true);
}

async function purgeDead() {
  if (!confirm("Drop every dead letter? This cannot be undone.")) return;
  const answer = await guarded(() => state.api.purgeDead());
  if (!answer) return;
  $("dead-outcome").textContent = `purged ${answer.purged}`;
  refreshOps(true);
}

// --- wiring -------------------------------------------------------------------------------

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) signIn(key);
});
$("key-forget").addEventListener("click", () => signOut());
$("launch-type").addEventListener("change", fillPayload);
$("launch-form").addEventListener("submit", launch);
$("filter-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.pages = [null];
  loadPage(0);
});
$("find-form").addEventListener("submit", findTask);
$("page-first").addEventListener("click", () => loadPage(0));
$("page-next").addEventListener("click", () => loadPage(state.pages.length - 1));
$("ops-refresh").addEventListener("click", () => refreshOps(true));
$("dead-replay-all").addEventListener("click", () => replayDead(null));
$("dead-purge").addEventListener("click", purgeDead);
window.addEventListener("hashchange", route);

const saved = sessionStorage.getItem("taskcast-api-key");
if (saved) signIn(saved);
else show("signin");
