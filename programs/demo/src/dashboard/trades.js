// The trade table of a finished run's results.

import { fmtSigned, h, isNum, MAX_TRADE_COLUMNS, MAX_TRADE_ROWS, orDash, setSign } from './util.js';

/** Collapsible trade list; the table is built on first open. */
export function tradeList(trades) {
  const details = h('details', { class: 'trades' },
    h('summary', null, 'Trades (' + trades.length.toLocaleString() + ')'));
  let built = false;
  details.addEventListener('toggle', () => {
    if (!details.open || built) return;
    built = true;
    const cols = [];
    for (const t of trades.slice(0, 200)) {
      if (t && typeof t === 'object' && !Array.isArray(t)) {
        for (const k of Object.keys(t)) if (!cols.includes(k) && cols.length < MAX_TRADE_COLUMNS) cols.push(k);
      }
    }
    const numericCol = (k) => trades.slice(0, 50).every((t) => t == null || typeof t !== 'object' || t[k] == null || isNum(t[k]));
    const isNumCol = Object.fromEntries(cols.map((k) => [k, numericCol(k)]));
    const money = (k) => /pnl|profit|p&l|gain/i.test(k);
    const head = h('tr', null, h('th', null, '#'), cols.map((k) => h('th', { class: isNumCol[k] ? '' : 'text' }, k)));
    const body = h('tbody');
    trades.slice(0, MAX_TRADE_ROWS).forEach((t, i) => {
      const tr = h('tr', null, h('td', null, String(i + 1)));
      for (const k of cols) {
        const v = t && typeof t === 'object' ? t[k] : undefined;
        let text;
        if (isNum(v) && money(k)) text = fmtSigned(v);
        else if (isNum(v)) text = Number.isInteger(v) ? v.toLocaleString() : v.toLocaleString(undefined, { maximumFractionDigits: 5 });
        else if (v !== null && typeof v === 'object') text = JSON.stringify(v);
        else text = orDash(v);
        const td = h('td', { class: isNumCol[k] ? '' : 'text' }, text);
        if (money(k)) setSign(td, v);
        tr.append(td);
      }
      body.append(tr);
    });
    const wrap = h('div', { class: 'table-scroll' }, h('table', { class: 'trade-table' }, h('thead', null, head), body));
    details.append(wrap);
    if (trades.length > MAX_TRADE_ROWS) {
      details.append(h('div', { class: 'trade-note' }, 'Showing the first ' + MAX_TRADE_ROWS.toLocaleString() + ' of ' + trades.length.toLocaleString() + ' trades.'));
    }
  });
  return details;
}
