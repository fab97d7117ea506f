// The table page's explorer: pick days, bank/rack and fields, page through the rows, download
// them as one CSV file, or copy the same selection as a command. It reads only the day files
// the site manifest names, and trusts a day only when its sha256 (WebCrypto) equals the
// manifest's entry or, under the reader rule, the site journal's entry for that day.
import { compressors, parquetMetadata, parquetReadObjects } from "./hyparquet.bundle.js";
import { PAGE_SIZE, commands, compare, estimate, formatter, size } from "./texts.js";

const MAX_DAYS = 62; // a preview, or a download built in memory, holds every chosen day
const box = document.getElementById("explorer");
const status = box.querySelector(".explorer-status");
const base = new URL(document.body.getAttribute("data-root") || "", location.href);
const site = box.dataset.site;
const tableName = box.dataset.table;
const t = JSON.parse(box.querySelector("script[type='application/json']").textContent);
const days = new Map(); // path -> verified rows of a day file (objects)
const place = { root: base.href.replace(/\/$/, ""), site, table: tableName, noApi: t.no_api };

function say(text, bad) {
  status.textContent = text;
  status.classList.toggle("bad", Boolean(bad));
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children);
  return node;
}

async function getJson(path, optional) {
  const response = await fetch(new URL(path, base), { cache: "no-cache" });
  if (optional && response.status === 404) return null;
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- reading verified day files ----------------------------------------------------------

function trusted(manifest, journal, day) {
  const sums = new Set([day.files.parquet.sha256]);
  const changes = (journal && journal.changes && journal.changes[tableName]) || [];
  for (const entry of changes) {
    const sha = entry && entry.date === day.date && entry.files && entry.files.parquet
      && entry.files.parquet.sha256;
    if (sha) sums.add(sha);
  }
  return sums;
}

async function readDay(state, day, keep) {
  const path = day.files.parquet.path;
  if (days.has(path)) return days.get(path);
  const response = await fetch(new URL(path, base), { cache: "no-cache" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  const sha = hex(await crypto.subtle.digest("SHA-256", bytes));
  // The journal is read only when a file differs from its manifest entry: during a publish,
  // the journal names the new version of a day whose file is being replaced.
  if (sha !== day.files.parquet.sha256 && state.journal === undefined) {
    state.journal = await getJson(`sites/${site}/journal.json`, true);
  }
  if (!trusted(state.manifest, state.journal, day).has(sha)) {
    throw new Error(t.tampered.replace("{date}", day.date).replace("{path}", path));
  }
  const rows = await parquetReadObjects({
    file: bytes,
    metadata: parquetMetadata(bytes),
    compressors,
    parsers: { timestampFromMicroseconds: (v) => BigInt(v) },
  });
  if (keep) days.set(path, rows); // a download reads day after day and keeps none of them
  return rows;
}

// One day's rows of the selection, in `ess-export query` order. A day file holds the rows of
// one local date, so the days in date order, each sorted, are the whole selection sorted.
function dayRows(state, chosen, rows) {
  const time = state.columns[0].name;
  const kept = rows.filter((row) => row[time] !== null && row[time] !== undefined
    && (chosen.bank === null || Number(row.bank_id) === chosen.bank)
    && (chosen.rack === null || Number(row.rack_id) === chosen.rack));
  const order = [time, ...state.keys];
  order.push(...chosen.fields.filter((f) => !order.includes(f)));
  return kept.sort((a, b) => {
    for (const name of order) {
      const c = compare(a[name], b[name]);
      if (c) return c;
    }
    return 0;
  });
}

async function select(state, form) {
  const chosen = selection(state, form);
  if (chosen.days.length > MAX_DAYS) throw new Error(t.too_many.replace("{days}", MAX_DAYS));
  const rows = [];
  for (const day of chosen.days) rows.push(...dayRows(state, chosen, await readDay(state, day, true)));
  return { ...chosen, rows };
}

function selection(state, form) {
  const from = form.elements.from.value;
  const to = form.elements.to.value;
  if (!from || !to || to < from) throw new Error(t.bad_range);
  const number = (name) => {
    const input = form.elements[name];
    return input && input.value !== "" ? Number(input.value) : null;
  };
  const fields = state.columns.map((c) => c.name).filter((n) => form.elements[`f-${n}`].checked);
  if (!fields.length) throw new Error(t.no_fields);
  const chosenDays = state.table.partitions.filter(
    (p) => p.date >= from && p.date <= to && p.files.parquet,
  );
  return { from, to, bank: number("bank"), rack: number("rack"), fields, days: chosenDays };
}

// --- what the page shows -------------------------------------------------------------------

function showPage(state, chosen, page) {
  const pages = Math.max(1, Math.ceil(chosen.rows.length / PAGE_SIZE));
  page = Math.min(Math.max(page, 1), pages);
  const rows = chosen.rows.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
  const formats = chosen.fields.map((n) => formatter(state.byName[n], state.manifest.timezone));
  const head = el("tr", {}, ...chosen.fields.map((n) => el("th", { scope: "col" }, n)));
  const body = rows.map((row) =>
    el("tr", {}, ...chosen.fields.map((n, i) => el("td", {}, formats[i](row[n])))),
  );
  const table = el("table", { class: "grid-table compact preview", id: "explorer-rows" },
    el("thead", {}, head), el("tbody", {}, ...body));
  const pager = el("p", { class: "pager" });
  const go = (label, target, disabled) => {
    const button = el("button", { type: "button", disabled }, label);
    button.addEventListener("click", () => showPage(state, chosen, target));
    return button;
  };
  pager.append(
    go(t.previous, page - 1, page <= 1),
    el("span", { id: "explorer-page" }, t.page_of.replace("{page}", page).replace("{pages}", pages)
      .replace("{count}", chosen.rows.length.toLocaleString("en"))),
    go(t.next, page + 1, page >= pages),
  );
  state.result.replaceChildren(pager, el("div", { class: "scroll" }, table));
}

// --- the size note and the download --------------------------------------------------------

const streams = () => typeof window.showSaveFilePicker === "function";

function sizeNote(state, chosen) {
  const { rows, bytes } = estimate(state.columns, chosen);
  return t.size_note.replace("{days}", chosen.days.length)
    .replace("{rows}", rows.toLocaleString("en")).replace("{size}", size(bytes))
    + " " + (streams() ? t.size_stream : t.size_memory.replace("{days}", MAX_DAYS));
}

// Where the CSV goes: a file the reader picks, written a day at a time (File System Access
// API), else a Blob of per-day chunks offered as a download once the last day is in.
async function sink(state, name) {
  if (streams()) {
    try {
      const handle = await window.showSaveFilePicker({
        suggestedName: name, types: [{ description: "CSV", accept: { "text/csv": [".csv"] } }],
      });
      const out = await handle.createWritable();
      return { write: (text) => out.write(text), close: () => out.close(), abort: () => out.abort() };
    } catch (error) {
      if (error.name === "AbortError") return null; // the reader cancelled the picker
      // Any other refusal (e.g. inside a cross-origin frame): build the file in memory.
    }
  }
  const parts = [];
  return {
    memory: true,
    write: async (text) => { parts.push(new Blob([text])); },
    close: async () => {
      const blob = new Blob(parts, { type: "text/csv" });
      if (state.blobUrl) URL.revokeObjectURL(state.blobUrl); // the previous download's file
      state.blobUrl = URL.createObjectURL(blob);
      const link = el("a", { href: state.blobUrl, download: name, id: "explorer-csv" },
        `${name} (${size(blob.size)})`);
      state.saved.replaceChildren(link);
      link.click();
    },
    abort: async () => {},
  };
}

async function download(state, form) {
  const chosen = selection(state, form); // before any await: the picker needs the click
  const name = `${site}_${tableName}_${chosen.from}_${chosen.to}.csv`;
  const out = await sink(state, name);
  if (out === null) return say(t.cancelled);
  if (out.memory && chosen.days.length > MAX_DAYS) throw new Error(t.too_many.replace("{days}", MAX_DAYS));
  const formats = chosen.fields.map((n) => formatter(state.byName[n], state.manifest.timezone));
  let rows = 0;
  try {
    await out.write(chosen.fields.join(",") + "\n");
    for (const [i, day] of chosen.days.entries()) {
      say(t.writing.replace("{day}", i + 1).replace("{days}", chosen.days.length));
      const lines = dayRows(state, chosen, await readDay(state, day, false))
        .map((row) => chosen.fields.map((n, j) => formats[j](row[n])).join(",") + "\n");
      if (lines.length) await out.write(lines.join(""));
      rows += lines.length;
    }
    await out.close();
  } catch (error) {
    await out.abort(); // a refused day leaves no half-written file behind
    throw error;
  }
  say(t.written.replace("{rows}", rows.toLocaleString("en")).replace("{days}", chosen.days.length));
}

function build(state) {
  const parts = state.table.partitions.filter((p) => p.files.parquet);
  const first = parts[0].date;
  const last = parts[parts.length - 1].date;
  const from = parts[Math.max(0, parts.length - 2)].date;
  const field = (label, input) => el("label", { class: "field" }, el("span", {}, label), input);
  const form = el("form", { class: "explorer-form" },
    field(t.from, el("input", { type: "date", name: "from", min: first, max: last, value: from })),
    field(t.to, el("input", { type: "date", name: "to", min: first, max: last, value: last })));
  for (const key of ["bank", "rack"]) {
    if (state.byName[`${key}_id`]) {
      form.append(field(t[key], el("input", { type: "number", name: key, min: 0, step: 1 })));
    }
  }
  const boxes = state.columns.map((c) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", name: `f-${c.name}`, checked: true }), c.name));
  form.append(el("fieldset", { class: "fields" }, el("legend", {}, t.fields), ...boxes));
  const show = el("button", { type: "submit" }, t.show);
  const csv = el("button", { type: "button", name: "csv" }, t.download);
  const copyAs = el("select", { name: "copy", "aria-label": t.copy_as },
    ...["query", "duckdb", "curl", "api"].map((k) => el("option", { value: k }, t[`copy_${k}`])));
  const copy = el("button", { type: "button", name: "copy-button" }, t.copy);
  const note = el("p", { class: "size-note muted", id: "explorer-size" });
  form.append(el("p", { class: "actions" }, show, csv, copyAs, copy), note);
  const snippet = el("pre", { id: "explorer-copy", class: "copy" });
  state.result = el("div", { id: "explorer-result" });
  state.saved = el("p", { class: "saved" });
  box.append(form, snippet, state.saved, state.result);

  const refresh = () => {
    try {
      const chosen = selection(state, form);
      snippet.textContent = commands(state, chosen, place)[copyAs.value];
      note.textContent = sizeNote(state, chosen);
      if (status.classList.contains("bad")) say(t.ready);
    } catch (error) {
      say(error.message, true);
    }
  };
  const run = async (what) => {
    try {
      const started = performance.now();
      say(t.reading);
      if (what === "csv") return await download(state, form);
      const chosen = await select(state, form);
      showPage(state, chosen, 1);
      box.dataset.ms = String(Math.round(performance.now() - started));
      say(t.verified.replace("{days}", chosen.days.length));
    } catch (error) {
      state.result.replaceChildren();
      say(error.message, true);
    }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); run("page"); });
  form.addEventListener("input", refresh);
  csv.addEventListener("click", () => run("csv"));
  copyAs.addEventListener("change", refresh);
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(snippet.textContent);
      say(t.copied.replace("{what}", t[`copy_${copyAs.value}`]));
    } catch (error) {
      say(t.copy_failed, true); // e.g. no clipboard permission: the text is shown to copy by hand
    }
  });
  refresh();
}

async function start() {
  const manifest = await getJson(`sites/${site}/manifest.json`);
  const table = manifest.tables[tableName];
  if (!table || !table.partitions.some((p) => p.files.parquet)) throw new Error(t.no_days);
  table.partitions.sort((a, b) => (a.date < b.date ? -1 : 1));
  const byName = Object.fromEntries(table.columns.map((c) => [c.name, c]));
  const keys = (table.keys || []).map((k) => k.toLowerCase()).filter((k) => byName[k]);
  const state = { manifest, journal: undefined, table, columns: table.columns, byName, keys };
  build(state);
  say(t.ready);
  box.dataset.ready = "true";
}

start().catch((error) => say(error.message, true));
