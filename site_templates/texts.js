// What the explorer writes, as pure functions of a selection: cells as the project's CSV
// writes them, the Download's size estimate from the manifest, and the "Copy as" texts.

export const PAGE_SIZE = 100; // the old API's page size

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

export function formatter(column, zone) {
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
export function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
  if (typeof b === "number" && Number.isNaN(b)) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

// --- the size note ---------------------------------------------------------------------------

const TIME_WIDTH = 26; // "2022-09-01T00:00:00+09:00" and its comma

// Rows and CSV bytes of the selection, from the manifest alone: each day's rows shared among
// the bank/rack ids its stats span, and its CSV file's bytes a row shared among the fields.
export function estimate(columns, chosen) {
  const times = columns.filter((c) => c.type === "timestamp").length;
  const chosenTimes = chosen.fields.filter((n) => columns.find((c) => c.name === n).type === "timestamp").length;
  let rows = 0;
  let bytes = chosen.fields.join(",").length + 1;
  for (const day of chosen.days) {
    let share = 1;
    for (const [key, value] of [["bank_id", chosen.bank], ["rack_id", chosen.rack]]) {
      const range = day.stats && day.stats[key];
      if (value === null || !range || range.min === null) continue;
      share *= value < range.min || value > range.max ? 0 : 1 / (range.max - range.min + 1);
    }
    const n = day.rows * share;
    const line = day.files.csv && day.rows ? day.files.csv.bytes / day.rows : 12 * columns.length;
    const other = Math.max(0, line - TIME_WIDTH * times) / Math.max(1, columns.length - times);
    rows += n;
    bytes += n * (TIME_WIDTH * chosenTimes + other * (chosen.fields.length - chosenTimes));
  }
  return { rows: Math.round(rows), bytes: Math.round(bytes) };
}

export function size(bytes) {
  const units = ["B", "kB", "MB", "GB"];
  let i = 0;
  while (bytes >= 1000 && i < units.length - 1) { bytes /= 1000; i += 1; }
  return `${i ? bytes.toPrecision(3) : bytes} ${units[i]}`;
}

// --- Copy as --------------------------------------------------------------------------------

// The old API's list route for the selection, or null when it has none (rack rows are listed
// per bank, bank rows per bank).
function apiRoute(tableName, chosen) {
  const { bank, rack } = chosen;
  if (tableName === "rack" && bank !== null) return rack === null ? `banks/${bank}/racks/` : `banks/${bank}/racks/${rack}/`;
  if (tableName === "bank" && bank !== null && rack === null) return `banks/${bank}/`;
  if ((tableName === "pcs" || tableName === "etc") && bank === null && rack === null) return `${tableName}/`;
  return null;
}

export function commands(state, chosen, { root, site, table: tableName, noApi }) {
  const start = `${chosen.from}T00:00:00`;
  const filters = [];
  if (chosen.bank !== null) filters.push(["bank", chosen.bank]);
  if (chosen.rack !== null) filters.push(["rack", chosen.rack]);
  const urls = chosen.days.map((p) => `${root}/${p.files.parquet.path}`);
  const where = [`"date" BETWEEN '${chosen.from}' AND '${chosen.to}'`,
    ...filters.map(([k, v]) => `${k}_id = ${v}`)];
  const order = [state.columns[0].name, ...state.keys];
  order.push(...chosen.fields.filter((f) => !order.includes(f)));
  const route = apiRoute(tableName, chosen);
  return {
    query: ["ess-export query", root, `--site ${site}`, `--table ${tableName}`,
      ...filters.map(([k, v]) => `--${k} ${v}`), `--fields ${chosen.fields.join(",")}`,
      `--start ${start}`, `--end ${chosen.to}T23:59:59.999999`, "--format csv"].join(" "),
    duckdb: `SELECT ${chosen.fields.map((f) => `"${f}"`).join(", ")}\nFROM read_parquet([\n`
      + urls.map((u) => `  '${u}'`).join(",\n")
      + `\n], hive_partitioning = true)\nWHERE ${where.join(" AND ")}\n`
      + `ORDER BY ${order.map((f) => `"${f}"`).join(", ")};`,
    curl: urls.map((u) => `curl -fLO ${u}`).join("\n"),
    // Served by `ess-export api` on this publish; its whole seconds end the last day.
    api: route === null ? noApi : `${root}/api/ess/operating-sites/${site}/${route}`
      + `?fields=${chosen.fields.join(",")}&start-time=${start}`
      + `&end-time=${chosen.to}T23:59:59&page=1&page_size=${PAGE_SIZE}`,
  };
}
