// The trade table of a finished run's results (`results.trades`: see PROTOCOL.md and
// src/wire/trade.rs). Columns in the order a trader reads a trade, with readable
// headers and units; keys it does not know follow, named from their snake_case.

import { fmtSigned, h, isNum, MAX_TRADE_COLUMNS, MAX_TRADE_ROWS, orDash, plainObject, setSign } from './util.js';

/**
 * The known columns, in reading order: key (a trade's key, or a value computed from
 * the trade), header, kind (how the value is shown).
 */
const COLUMNS = [
  ['entry_time', 'Entry time (UTC)', 'time'],
  ['exit_time', 'Exit time (UTC)', 'time'],
  ['side', 'Side', 'text'],
  ['size', 'Size (units)', 'number'],
  ['entry_price', 'Entry price', 'price'],
  ['exit_price', 'Exit price', 'price'],
  ['pnl', 'P&L', 'money'],
  ['return_pct', 'Return (%)', 'percent'],
  ['held', 'Held', 'text'],
  ['closed_at_end', 'Closed at end of data', 'flag'],
];
const KNOWN = new Set(COLUMNS.map(([key]) => key));

/** Values computed from a trade's keys: its return on the position's value, how long it was held. */
const COMPUTED = {
  return_pct(t) {
    const basis = isNum(t.entry_price) && isNum(t.size) ? Math.abs(t.entry_price * t.size) : 0;
    return isNum(t.pnl) && basis > 0 ? (t.pnl / basis) * 100 : null;
  },
  held(t) {
    const from = typeof t.entry_time === 'string' ? Date.parse(t.entry_time) : NaN;
    const to = typeof t.exit_time === 'string' ? Date.parse(t.exit_time) : NaN;
    return Number.isFinite(from) && Number.isFinite(to) && to >= from ? fmtSpan(to - from) : null;
  },
};

/** A duration in milliseconds as `45 min`, `3 h 15 min`, `2 d 4 h`. */
function fmtSpan(ms) {
  const min = Math.round(ms / 60000);
  if (min < 60) return min + ' min';
  const hours = Math.floor(min / 60);
  if (hours < 24) return hours + ' h' + (min % 60 ? ' ' + (min % 60) + ' min' : '');
  const days = Math.floor(hours / 24);
  return days + ' d' + (hours % 24 ? ' ' + (hours % 24) + ' h' : '');
}

/** `closed_at_end` → `Closed at end`. */
function readable(key) {
  const words = String(key).replace(/_/g, ' ').trim();
  return words ? words[0].toUpperCase() + words.slice(1) : '?';
}

/** An RFC 3339 time as `2024-01-15 10:30` (the full text in the cell's title). */
function fmtTime(v) {
  if (typeof v !== 'string') return orDash(v);
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?/.exec(v);
  if (!m) return v;
  return m[1] + ' ' + m[2] + (m[3] && m[3] !== ':00' ? m[3] : '');
}

function cellText(kind, v) {
  if (kind === 'time') return fmtTime(v);
  if (kind === 'money') return isNum(v) ? fmtSigned(v) : orDash(v);
  if (kind === 'percent') return isNum(v) ? fmtSigned(v, 2) : '—';
  if (kind === 'flag') return v === true ? 'yes' : v === false ? '' : orDash(v);
  if (isNum(v)) return Number.isInteger(v) ? v.toLocaleString() : v.toLocaleString(undefined, { maximumFractionDigits: 5 });
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return orDash(v);
}

/** The summary line: how many trades are listed, and of how many. */
export function tradesSummary(listed, omitted, total) {
  const all = isNum(total) && total > listed ? total : listed + (isNum(omitted) && omitted > 0 ? omitted : 0);
  if (all > listed) return 'Trades: the last ' + listed.toLocaleString() + ' of ' + all.toLocaleString();
  return 'Trades (' + listed.toLocaleString() + ')';
}

/**
 * A collapsible trade list, built on first open. `omitted`: `results.trades_omitted`
 * (the earlier trades the results leave out); `total`: `total_trades`.
 */
export function tradeList(trades, omitted, total) {
  const skipped = isNum(omitted) && omitted > 0 ? Math.floor(omitted) : 0;
  const all = isNum(total) && total > trades.length ? total : trades.length + skipped;
  const details = h('details', { class: 'trades', 'data-listed': trades.length, 'data-total': all },
    h('summary', null, tradesSummary(trades.length, skipped, total)));
  let built = false;
  details.addEventListener('toggle', () => {
    if (!details.open || built) return;
    built = true;
    details.append(...tradeTable(trades, all));
  });
  return details;
}

function tradeTable(trades, all) {
  const rows = trades.filter(plainObject);
  const present = new Set();
  for (const t of rows.slice(0, 200)) for (const k of Object.keys(t)) present.add(k);
  // The known columns the trades have (computed ones when their inputs are there),
  // then the other keys, in their order.
  const cols = COLUMNS.filter(([key]) => present.has(key) ||
    (key === 'return_pct' && present.has('pnl') && present.has('entry_price') && present.has('size')) ||
    (key === 'held' && present.has('entry_time') && present.has('exit_time')));
  for (const key of present) {
    if (!KNOWN.has(key) && cols.length < MAX_TRADE_COLUMNS) cols.push([key, readable(key), 'auto']);
  }
  const numeric = (kind) => kind !== 'text' && kind !== 'time' && kind !== 'flag';
  const head = h('tr', null, h('th', { 'data-key': '#' }, '#'),
    cols.map(([key, label, kind]) => h('th', { 'data-key': key, class: numeric(kind) ? '' : 'text' }, label)));
  // The last rows when there are more than the page shows: the newest trades.
  const shown = rows.slice(-MAX_TRADE_ROWS);
  const first = all - shown.length;          // the number of the first row shown, less one
  const body = h('tbody');
  shown.forEach((t, i) => {
    const tr = h('tr', { class: t.closed_at_end === true ? 'closed-at-end' : null }, h('td', null, (first + i + 1).toLocaleString()));
    for (const [key, , kind] of cols) {
      const own = Object.hasOwn(t, key);
      const v = own ? t[key] : Object.hasOwn(COMPUTED, key) ? COMPUTED[key](t) : undefined;
      const td = h('td', { class: numeric(kind) ? '' : 'text', title: kind === 'time' && typeof v === 'string' ? v : null },
        cellText(kind, v));
      if (kind === 'money' || kind === 'percent') setSign(td, v);
      tr.append(td);
    }
    body.append(tr);
  });
  const out = [h('div', { class: 'table-scroll' }, h('table', { class: 'trade-table' }, h('thead', null, head), body))];
  if (all > shown.length) {
    out.push(h('div', { class: 'trade-note' }, 'The last ' + shown.length.toLocaleString() + ' of ' + all.toLocaleString() +
      ' trades; the ' + (all - shown.length).toLocaleString() + ' earlier ones are not listed in the results.'));
  }
  return out;
}
