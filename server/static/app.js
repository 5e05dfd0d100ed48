// The search page: results as you type, filters, and a document view that scrolls to the chunk.
// Plain DOM, no framework or network beyond this server; text is only ever set as text.
"use strict";

const DEBOUNCE_MS = 200;
const $ = (id) => document.getElementById(id);
const form = $("search-form"), box = $("q"), list = $("results"), statusLine = $("status");
const docPane = $("document"), docText = $("doc-text"), docTitle = $("doc-title"), docNote = $("doc-note");
const main = $("main");

let token = sessionStorage.getItem("semindex-token") || "";
let timer = 0, latest = 0, controller = null, shown = [];

// A token may come in the address (#token=...): keep it for this tab and take it out of the address.
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) {
  token = fromHash;
  sessionStorage.setItem("semindex-token", token);
  history.replaceState(null, "", location.pathname + location.search);
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(url, signal) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let response;
  try {
    response = await fetch(url, { headers, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "the server cannot be reached; is semindex serve still running?");
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) {
    if (response.status === 401) askForToken();
    const message = body && body.error;  // every API error is {"error": "one line"}
    throw new ApiError(response.status, message || "the server answered " + response.status);
  }
  return body;
}

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function askForToken() {
  $("token-form").hidden = false;
  $("token").focus();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("semindex-token", token);
  $("token-form").hidden = true;
  loadInfo();
  runSearch();
});

function splitList(value) {
  return value.split(",").map((s) => s.trim()).filter(Boolean);
}

function currentQuery() {
  return {
    q: box.value.trim(),
    k: Math.min(100, Math.max(1, parseInt($("k").value, 10) || 10)),
    mode: $("mode").value,
    path: splitList($("path").value),
    ext: splitList($("ext").value),
  };
}

function queryString(query) {
  const params = new URLSearchParams({ q: query.q, k: String(query.k) });
  if (query.mode) params.set("mode", query.mode);
  query.path.forEach((p) => params.append("path", p));
  query.ext.forEach((e) => params.append("ext", e));
  return params.toString();
}

function scheduleSearch() {
  clearTimeout(timer);
  timer = setTimeout(runSearch, DEBOUNCE_MS);
}

async function runSearch() {
  clearTimeout(timer);
  const query = currentQuery();
  const address = query.q ? "?" + queryString(query) : location.pathname;
  history.replaceState(null, "", address);
  if (controller) controller.abort();  // an older answer must never replace a newer one
  if (!query.q) {
    render([]);
    say("");
    return;
  }
  controller = new AbortController();
  const ticket = ++latest;
  const started = performance.now();
  say("Searching…");
  try {
    const answer = await api("/api/search?" + queryString(query), controller.signal);
    if (ticket !== latest) return;
    render(answer.results);
    const ms = Math.round(performance.now() - started);
    say(answer.results.length ? `${answer.results.length} results · ${ms} ms` : "No results. Try other words or fewer filters.");
  } catch (err) {
    if (err.name === "AbortError" || ticket !== latest) return;
    render([]);
    say(err.message, true);
  }
}

function location_of(result) {
  if (result.record) return `${result.path} › ${result.record}`;
  if (result.page !== null && result.page !== undefined) return `${result.path} · page ${result.page}`;
  return `${result.path}:${result.line || result.start_line}`;
}

// The API counts offsets in Unicode code points (Python's str); JavaScript strings count UTF-16
// units, where an emoji takes two. This maps code-point offsets of ``text`` to UTF-16 ones.
function utf16Offsets(text, offsets) {
  const wanted = [...new Set(offsets)].sort((a, b) => a - b);
  const found = new Map();
  let points = 0;
  let units = 0;
  let next = 0;
  while (next < wanted.length && units <= text.length) {
    while (next < wanted.length && wanted[next] === points) found.set(wanted[next++], units);
    if (units >= text.length) break;
    units += text.codePointAt(units) > 0xffff ? 2 : 1;
    points += 1;
  }
  for (; next < wanted.length; next++) found.set(wanted[next], text.length);
  return offsets.map((offset) => found.get(offset));
}

function withMarks(parent, text, pointSpans) {
  const flat = utf16Offsets(text, pointSpans.flat());
  const spans = pointSpans.map((_, i) => [flat[2 * i], flat[2 * i + 1]]);
  let at = 0;
  for (const [start, end] of spans) {
    if (start < at || end <= start) continue;
    parent.append(text.slice(at, start));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(start, end);
    parent.append(mark);
    at = end;
  }
  parent.append(text.slice(at));
}

function render(results) {
  shown = results;
  list.replaceChildren();
  results.forEach((result, i) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "result";
    button.dataset.index = String(i);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = result.cosine !== null && result.cosine !== undefined
      ? `cosine ${result.cosine.toFixed(3)}` : `score ${Number(result.score).toFixed(3)}`;
    score.title = `rank ${result.rank} · ${result.mode} score ${Number(result.score).toFixed(4)}`;
    const where = document.createElement("div");
    where.className = "where";
    where.textContent = location_of(result);
    const snippet = document.createElement("p");
    snippet.className = "snippet";
    withMarks(snippet, result.snippet || result.text, result.snippet ? result.highlights : []);
    button.append(score, where, snippet);
    if (result.duplicates && result.duplicates.length) {
      const also = document.createElement("p");
      also.className = "also";
      also.textContent = "Same text also in " + result.duplicates.map((d) => d.path).join(", ");
      button.append(also);
    }
    button.addEventListener("click", () => openDocument(i));
    item.append(button);
    list.append(item);
  });
}

function resultButtons() {
  return Array.from(list.querySelectorAll(".result"));
}

function documentUrl(result) {
  const path = result.path.split("/").map(encodeURIComponent).join("/");
  return `/api/documents/${path}?chunk=${result.chunk}`;
}

async function openDocument(i) {
  const result = shown[i];
  if (!result) return;
  resultButtons().forEach((b, j) => b.classList.toggle("active", j === i));
  main.classList.add("with-document");
  docPane.hidden = false;
  docTitle.textContent = location_of(result);
  docNote.hidden = true;
  docText.replaceChildren(result.text);  // shown at once; replaced by the whole document below
  const ticket = (openDocument.ticket = (openDocument.ticket || 0) + 1);
  if (!result.record) {
    try {
      const doc = await api(documentUrl(result));
      if (ticket !== openDocument.ticket) return;
      const [start, end] = utf16Offsets(doc.text, [doc.highlight.char_start, doc.highlight.char_end]);
      const chosen = document.createElement("span");
      chosen.className = "chosen";
      chosen.textContent = doc.text.slice(start, end);
      docText.replaceChildren(doc.text.slice(0, start), chosen, doc.text.slice(end));
      if (doc.changed_since_indexed) note("The file changed since it was indexed: the highlight may be off.");
      scrollTo(chosen);
      return;
    } catch (err) {
      if (ticket !== openDocument.ticket) return;
      note(`Showing the matched chunk only: ${err.message}.`);
    }
  } else {
    note("A record of a data file: its text as indexed.");
  }
  const chosen = document.createElement("span");
  chosen.className = "chosen";
  chosen.textContent = result.text;
  docText.replaceChildren(chosen);
}

function scrollTo(chosen) {
  // The pane scrolls on its own on a wide screen (the results stay put); on a phone the page does.
  if (docText.scrollHeight > docText.clientHeight + 1) {
    docText.scrollTop = Math.max(0, chosen.offsetTop - 24);
  } else {
    chosen.scrollIntoView({ block: "start" });
  }
}

function note(text) {
  docNote.textContent = text;
  docNote.hidden = false;
}

function closeDocument() {
  if (docPane.hidden) return false;
  docPane.hidden = true;
  main.classList.remove("with-document");
  const active = list.querySelector(".result.active");
  (active || box).focus();
  return true;
}

$("close").addEventListener("click", closeDocument);
form.addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
box.addEventListener("input", scheduleSearch);
for (const id of ["path", "ext", "k"]) $(id).addEventListener("input", scheduleSearch);
$("mode").addEventListener("change", runSearch);

document.addEventListener("keydown", (event) => {
  const buttons = resultButtons();
  const at = buttons.indexOf(document.activeElement);
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing) {
    event.preventDefault();
    box.focus();
    box.select();
  } else if (event.key === "Escape") {
    if (!closeDocument() && document.activeElement === box) {
      box.value = "";
      runSearch();
    }
  } else if (event.key === "ArrowDown" && (document.activeElement === box || at >= 0) && buttons.length) {
    event.preventDefault();
    buttons[Math.min(at + 1, buttons.length - 1)].focus();
  } else if (event.key === "ArrowUp" && at >= 0) {
    event.preventDefault();
    (at === 0 ? box : buttons[at - 1]).focus();
  }
});

async function loadInfo() {
  try {
    const info = await api("/api/info");
    const model = String(info.model).split("/").slice(-1)[0];
    $("info").textContent = `${info.chunks.toLocaleString()} chunks in ${info.documents.toLocaleString()} documents · ` +
      `version ${info.version} · ${model}`;
  } catch (err) {
    if (err.status !== 401) $("info").textContent = err.message;
  }
}

// Start from the address, so a search can be bookmarked or shared.
const start = new URLSearchParams(location.search);
if (start.get("q")) {
  box.value = start.get("q");
  if (start.get("k")) $("k").value = start.get("k");
  if (start.get("mode")) $("mode").value = start.get("mode");
  $("path").value = start.getAll("path").join(", ");
  $("ext").value = start.getAll("ext").join(", ");
  if ($("path").value || $("ext").value || start.get("mode")) $("filters").open = true;
}
loadInfo();
if (box.value) runSearch();
