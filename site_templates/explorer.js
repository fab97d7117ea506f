// The table page's explorer: pick days, bank/rack and fields, page through the rows, download
// them as one CSV file, or copy the same selection as a command. It reads only the day files
// the site manifest names, and trusts a day only when its sha256 (WebCrypto) equals the
// manifest's entry or, under the reader rule, the site journal's entry for that day.
import { compressors, parquetMetadata, parquetReadObjects } from "./hyparquet.bundle.js";

const PAGE_SIZE = 100; // the old API's page size
const MAX_DAYS = 62; // a preview or download reads every chosen day into memory
const box = document.getElementById("explorer");
const status = box.querySelector(".explorer-status");
const base = new URL(document.body.getAttribute("data-root") || "", location.href);
const site = box.dataset.site;
const tableName = box.dataset.table;
const t = JSON.parse(box.querySelector("script[type='application/json']").textContent);
const days = new Map(); // path -> verified rows of a day file (objects)

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

// --- values as the project's CSV writes them ----------------------------------------------

function clock(zone) {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  return (micros) => {
    const us = BigInt(micros);
    const ms = Number(us / 1000n) - (us % 1000n < 0n ? 1 : 0);
    const p = Object.fromEntries(format.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
    const wall = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
    const offset = Math.round((wall - Math.floor(ms / 1000) * 1000) / 60000);
    const sign = offset < 0 ? "-" : "+";
    const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0");
    const mm = String(Math.abs(offset) % 60).padStart(2, "0");
    const frac = Number(((us % 1000000n) + 1000000n) % 1000000n);
    const fraction = frac === 0 ? "" : frac % 1000 === 0
      ? "." + String(frac / 1000).padStart(3, "0") : "." + String(frac).padStart(6, "0");
    return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}${fraction}${sign}${hh}:${mm}`;
  };
}

function formatter(column, zone) {
  if (column.type === "timestamp") {
    const local = clock(zone);
    return (v) => (v === null || v === undefined ? "" : local(v));
  }
  if (column.type === "float") {
    return (v) => {
      if (v === null || v === undefined) return "";
      if (Number.isNaN(v)) return "NaN";
      if (v === Infinity) return "inf";
      if (v === -Infinity) return "-inf";
      return Number.isInteger(v) && Math.abs(v) < 1e16 ? v.toFixed(1) : String(v);
    };
  }
  if (column.type === "string") {
    return (v) => {
      if (v === null || v === undefined) return "";
      if (v === "") return '""';
      return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
    };
  }
  return (v) => (v === null || v === undefined ? "" : String(v));
}

// DuckDB's ORDER BY ... ASC NULLS LAST: NULL after everything, NaN after every number.
function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
  if (typeof b === "number" && Number.isNaN(b)) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
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

async function readDay(state, day) {
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
  days.set(path, rows);
  return rows;
}

async function select(state, form) {
  const chosen = selection(state, form);
  if (chosen.days.length > MAX_DAYS) throw new Error(t.too_many.replace("{days}", MAX_DAYS));
  const rows = [];
  for (const day of chosen.days) {
    for (const row of await readDay(state, day)) {
      if (chosen.bank !== null && Number(row.bank_id) !== chosen.bank) continue;
      if (chosen.rack !== null && Number(row.rack_id) !== chosen.rack) continue;
      rows.push(row);
    }
  }
  const order = [state.columns[0].name, ...state.keys];
  order.push(...chosen.fields.filter((f) => !order.includes(f)));
  rows.sort((a, b) => {
    for (const name of order) {
      const c = compare(a[name], b[name]);
      if (c) return c;
    }
    return 0;
  });
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

function csvLines(state, chosen, rows) {
  const formats = chosen.fields.map((n) => formatter(state.byName[n], state.manifest.timezone));
  return rows.map((row) => chosen.fields.map((n, i) => formats[i](row[n])).join(",") + "\n");
}

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

function commands(state, chosen) {
  const root = base.href.replace(/\/$/, "");
  const start = `${chosen.from}T00:00:00`;
  const end = `${chosen.to}T23:59:59.999999`;
  const filters = [];
  if (chosen.bank !== null) filters.push(["bank", chosen.bank]);
  if (chosen.rack !== null) filters.push(["rack", chosen.rack]);
  const urls = chosen.days.map((p) => `${root}/${p.files.parquet.path}`);
  const where = [`"date" BETWEEN '${chosen.from}' AND '${chosen.to}'`,
    ...filters.map(([k, v]) => `${k}_id = ${v}`)];
  const order = [state.columns[0].name, ...state.keys];
  order.push(...chosen.fields.filter((f) => !order.includes(f)));
  const api = state.keys.includes("rack_id") && chosen.bank !== null && chosen.rack !== null
    ? `banks/${chosen.bank}/racks/${chosen.rack}/`
    : state.keys.includes("bank_id") && chosen.bank !== null && tableName === "bank"
      ? `banks/${chosen.bank}/` : `${tableName}/`;
  return {
    query: ["ess-export query", root, `--site ${site}`, `--table ${tableName}`,
      ...filters.map(([k, v]) => `--${k} ${v}`), `--fields ${chosen.fields.join(",")}`,
      `--start ${start}`, `--end ${end}`, "--format csv"].join(" "),
    duckdb: `SELECT ${chosen.fields.map((f) => `"${f}"`).join(", ")}\nFROM read_parquet([\n`
      + urls.map((u) => `  '${u}'`).join(",\n")
      + `\n], hive_partitioning = true)\nWHERE ${where.join(" AND ")}\n`
      + `ORDER BY ${order.map((f) => `"${f}"`).join(", ")};`,
    curl: urls.map((u) => `curl -fLO ${u}`).join("\n"),
    api: `${root}/api/ess/operating-sites/${site}/${api}?fields=${chosen.fields.join(",")}`
      + `&start-time=${start.slice(0, 19)}&end-time=${chosen.to}T23:59:59&page=1`,
  };
}

async function download(state, chosen) {
  const chunks = [chosen.fields.join(",") + "\n", ...csvLines(state, chosen, chosen.rows)];
  const blob = new Blob(chunks, { type: "text/csv" });
  const name = `${site}_${tableName}_${chosen.from}_${chosen.to}.csv`;
  const link = el("a", { href: URL.createObjectURL(blob), download: name, id: "explorer-csv" },
    `${name} (${blob.size.toLocaleString("en")} B)`);
  state.saved.replaceChildren(link);
  link.click();
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
  form.append(el("p", { class: "actions" }, show, csv, copyAs, copy));
  const snippet = el("pre", { id: "explorer-copy", class: "copy" });
  state.result = el("div", { id: "explorer-result" });
  state.saved = el("p", { class: "saved" });
  box.append(form, snippet, state.saved, state.result);

  const run = async (what) => {
    try {
      const started = performance.now();
      say(t.reading);
      const chosen = await select(state, form);
      snippet.textContent = commands(state, chosen)[copyAs.value];
      if (what === "csv") await download(state, chosen);
      else showPage(state, chosen, 1);
      box.dataset.ms = String(Math.round(performance.now() - started));
      say(t.verified.replace("{days}", chosen.days.length));
    } catch (error) {
      state.result.replaceChildren();
      say(error.message, true);
    }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); run("page"); });
  csv.addEventListener("click", () => run("csv"));
  copyAs.addEventListener("change", () => {
    try { snippet.textContent = commands(state, selection(state, form))[copyAs.value]; }
    catch (error) { say(error.message, true); }
  });
  copy.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(snippet.textContent));
  snippet.textContent = commands(state, selection(state, form))[copyAs.value];
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
