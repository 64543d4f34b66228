// The compact view of the runs: a table, one row per run (id, state, progress, P&L,
// trades, started), in place of the cards. The toggle's choice is kept in localStorage.
// Rows are kept up to date in both views, so switching is instant.

import { finalFigures, progressPct, statusLabel } from './cards.js';
import { markDirty, runs } from './runs.js';
import { $, fmtClock, fmtInt, fmtSigned, h, isNum, setSign } from './util.js';

const KEY = 'backtest-stream-view';
const toggle = $('#view-toggle');
const table = $('#runs-table');
const tbody = $('tbody', table);
const cards = $('#runs');
let view = stored() === 'table' ? 'table' : 'cards';

function stored() {
  try { return localStorage.getItem(KEY); } catch (_) { return null; }
}
function store(value) {
  try { localStorage.setItem(KEY, value); } catch (_) { /* storage disabled: this page only */ }
}

/** Creates or updates the run's row (called by the render pass). */
export function renderRow(run) {
  if (!run.row) {
    const idBtn = h('button', { class: 'link-btn', type: 'button', title: 'Show this run\'s card' }, run.id);
    idBtn.addEventListener('click', () => showCard(run));
    run.row = {
      tr: h('tr', { 'data-backtest-id': run.id }),
      id: h('td', { class: 'col-id text', title: run.id }, idBtn),
      state: h('td', { class: 'col-state text' }, h('span', { class: 'status-pill' })),
      progress: h('td', { class: 'col-progress' }),
      pnl: h('td', { class: 'col-pnl' }),
      trades: h('td', { class: 'col-trades' }),
      started: h('td', { class: 'col-started' }),
    };
    const r = run.row;
    r.tr.append(r.id, r.state, r.progress, r.pnl, r.trades, r.started);
    tbody.prepend(r.tr);                 // newest first, as the cards
  }
  const r = run.row;
  const p = run.progress;
  const fin = run.status === 'complete' ? finalFigures(run) : null;
  const pnl = fin && fin.pnl != null ? fin.pnl : p ? p.current_pnl : null;
  const trades = fin && fin.trades != null ? fin.trades : p ? p.trades_count : null;
  r.tr.setAttribute('data-status', run.status);
  r.tr.setAttribute('data-label', statusLabel(run));
  r.state.firstChild.textContent = statusLabel(run);
  r.progress.textContent = progressPct(run).toFixed(1) + ' %';
  r.pnl.textContent = fmtSigned(pnl);
  setSign(r.pnl, pnl);
  r.trades.textContent = fmtInt(trades);
  r.trades.setAttribute('data-value', isNum(trades) ? String(trades) : '');
  const ts = run.meta.timestamp;
  r.started.textContent = ts ? fmtClock(ts).slice(0, 8) : '—';
  r.started.title = ts ? String(ts) : '';
}

export function removeRow(run) {
  if (run.row) run.row.tr.remove();
  run.row = null;
}

/** Back to the cards, scrolled to this run's card. */
function showCard(run) {
  setView('cards');
  if (run.card) {
    run.card.scrollIntoView({ block: 'start' });
    run.card.classList.add('flash');
    setTimeout(() => run.card && run.card.classList.remove('flash'), 1200);
  }
}

function setView(next) {
  view = next;
  store(view);
  apply();
  // Charts of cards drawn while hidden had no size: draw them again.
  if (view === 'cards') for (const run of runs.values()) markDirty(run, 'chart');
}

function apply() {
  const compact = view === 'table';
  document.body.setAttribute('data-view', view);
  table.hidden = !compact;
  cards.hidden = compact;
  toggle.setAttribute('aria-pressed', String(compact));
  toggle.textContent = compact ? 'Cards' : 'Table';
  toggle.title = compact ? 'Show the runs as cards' : 'Show the runs as a compact table';
}

toggle.addEventListener('click', () => setView(view === 'table' ? 'cards' : 'table'));
// At load, before runs.js has run (the modules import each other): no runs to touch yet.
apply();
