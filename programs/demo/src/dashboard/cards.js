// A run's card: its header, progress, stats, chart, error and results.

import { resizeObserver } from './chart.js';
import { restRefused } from './connection.js';
import { createLogPane } from './logpane.js';
import { markDirty, removeRun, runsEl, runsEmpty } from './runs.js';
import { tradeList } from './trades.js';
import { auth, fmt, fmtClock, fmtDuration, fmtInt, fmtPct, fmtSigned, h, isCancelError, isNum, notice, orDash, plainObject, setSign, setText } from './util.js';

export function buildCard(run) {
  const e = run.els;
  e.pill = h('span', { class: 'status-pill' }, 'running');
  e.title = h('h2', { class: 'run-title', title: run.id }, run.id);
  e.dismiss = h('button', { class: 'icon-btn', type: 'button', title: 'Remove from view', 'aria-label': 'Remove run from view' }, '×');
  e.cancel = h('button', { class: 'btn small cancel-run', type: 'button', title: 'Stop this run (DELETE /api/v1/backtest/{id})' }, 'Cancel');
  e.meta = h('div', { class: 'meta' });
  e.metaClip = h('div', { class: 'meta-clip' }, e.meta);
  e.fill = h('div', { class: 'progress-fill' });
  e.bar = h('div', {
    class: 'progress-bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': 0, 'data-progress': 0, 'aria-label': 'Progress',
  }, e.fill);
  e.pct = h('span', { class: 'progress-text' }, '0.0 %');
  e.statusLine = h('div', { class: 'status-line' }, 'Waiting for progress…');
  const stat = (label, cls) => {
    const dd = h('dd', { class: cls }, '—');
    return [h('div', { class: 'stat' }, h('dt', null, label), dd), dd];
  };
  let bars, date, trades, pnl;
  [bars, e.bars] = stat('Bars', 'stat-bars');
  [date, e.date] = stat('Date', 'stat-date');
  [trades, e.trades] = stat('Trades', 'stat-trades');
  [pnl, e.pnl] = stat('P&L', 'stat-pnl');
  e.canvas = h('canvas', { class: 'pnl-chart', 'aria-label': 'Profit and loss over the run', role: 'img' });
  e.chartEmpty = h('div', { class: 'chart-empty' }, 'The P&L chart fills in as progress arrives.');
  e.chartWrap = h('div', { class: 'chart-wrap' }, e.canvas, h('div', { class: 'chart-label' }, 'P&L'), e.chartEmpty);
  e.errorSlot = h('div', { class: 'error-slot' });
  e.resultSlot = h('div', { class: 'result-slot' });
  run.log = createLogPane(run.id, 'Log');

  run.card = h('article', { class: 'run-card panel', 'data-backtest-id': run.id, 'data-status': run.status },
    h('header', { class: 'card-head' }, h('div', { class: 'title-row' }, e.pill, e.title, e.cancel, e.dismiss), e.metaClip),
    h('div', null,
      h('div', { class: 'progress-row' }, e.bar, e.pct)),
    e.statusLine,
    h('dl', { class: 'stats' }, bars, date, trades, pnl),
    e.chartWrap,
    e.errorSlot,
    e.resultSlot,
    run.log.root);

  e.dismiss.addEventListener('click', () => removeRun(run));
  e.cancel.addEventListener('click', () => cancelRun(run));
  e.canvas.addEventListener('mousemove', (ev) => {
    const r = e.canvas.getBoundingClientRect();
    run.hoverX = ev.clientX - r.left;
    markDirty(run, 'chart');
  });
  e.canvas.addEventListener('mouseleave', () => { run.hoverX = null; markDirty(run, 'chart'); });
  if (resizeObserver) resizeObserver.observe(e.chartWrap);
  e.chartWrap._run = run;

  runsEl.prepend(run.card);           // newest first
  runsEmpty.hidden = true;
}

/** Asks the server to stop a running run; its backtest_error then ends the card. */
export async function cancelRun(run) {
  const btn = run.els.cancel;
  btn.disabled = true;
  btn.textContent = 'Cancelling…';
  try {
    const res = await fetch('/api/v1/backtest/' + encodeURIComponent(run.id), {
      method: 'DELETE', headers: auth.headers({ Accept: 'application/json' }),
    });
    if (res.ok || res.status === 409) return;         // 409: it had already finished
    const json = await res.json().catch(() => null);
    const msg = json && json.error ? String(json.error) : 'HTTP ' + res.status;
    restRefused(res.status, msg);
    notice('error', 'cancel-error-notice', '×', 'Could not cancel ' + run.id + ': ' + msg);
  } catch (err) {
    notice('error', 'cancel-error-notice', '×', 'Could not cancel ' + run.id + ': ' + (err && err.message ? err.message : String(err)));
  }
  btn.disabled = false;
  btn.textContent = 'Cancel';
}

/**
 * The card's meta line: variant, symbol, timeframe, dates, start time. Every item
 * carries its "·" separator in front of it, inside the item (no line break between
 * them); the line is shifted left by one separator's width inside a clipping box
 * (.meta-clip), so the separator of an item that starts a line is never seen, and a
 * separator never ends a line.
 */
export function renderMeta(run) {
  const m = run.meta;
  const e = run.els;
  const parts = [];
  if (m.variant) parts.push(h('span', { class: 'tag variant' }, m.variant));
  if (m.symbol) parts.push(h('span', { class: 'tag symbol' }, m.symbol));
  if (m.timeframe) parts.push(h('span', { class: 'timeframe' }, m.timeframe));
  if (m.start_date || m.end_date) parts.push(h('span', { class: 'dates' }, orDash(m.start_date) + ' → ' + orDash(m.end_date)));
  if (m.timestamp) parts.push(h('span', { class: 'started', title: String(m.timestamp) }, 'started ' + fmtClock(m.timestamp).slice(0, 8)));
  if (parts.length === 0) parts.push(h('span', { class: 'muted' }, 'waiting for the start event…'));
  e.meta.replaceChildren(...parts.map((p) => h('span', { class: 'meta-item' },
    h('span', { class: 'sep', 'aria-hidden': 'true' }, '·'), p)));
}

/** The figures of a finished run's results (backtest_complete, or the REST results), or null. */
export function finalFigures(run) {
  const d = run.complete || run.restResult;
  if (!plainObject(d)) return null;
  const res = plainObject(d.results) || {};
  const params = plainObject(res.parameters) || {};
  let pnl = null;
  if (isNum(d.final_balance) && isNum(params.initial_cash)) pnl = d.final_balance - params.initial_cash;
  else if (isNum(d.final_balance) && isNum(d.return_pct) && d.return_pct > -100) pnl = d.final_balance - d.final_balance / (1 + d.return_pct / 100);
  return {
    trades: isNum(d.total_trades) ? d.total_trades : null,
    pnl,
    bars: isNum(res.bars) ? res.bars : null,
  };
}

/** What the card's status line says of a run that ended, by state. */
function endedText(run, cancelled) {
  if (run.status === 'complete') return 'Complete' + (run.complete && run.complete.timestamp ? ' at ' + fmtClock(run.complete.timestamp).slice(0, 8) : '');
  if (run.status === 'lost') return 'Lost: the server restarted and no longer knows this run';
  if (cancelled) return 'Cancelled';
  return 'Stopped with an error';
}

/**
 * The state, progress bar and stat tiles. While the run runs the tiles show its latest
 * progress; once it completed, its final figures (a position force-closed at the end
 * of the data is a trade no progress event counted).
 */
export function renderProgress(run) {
  const e = run.els;
  const p = run.progress;
  const cancelled = run.status === 'error' && isCancelError(run.error);
  run.card.setAttribute('data-status', run.status);
  if (cancelled) run.card.setAttribute('data-cancelled', 'true');
  e.cancel.hidden = run.status !== 'running';
  e.pill.textContent = statusLabel(run);
  const pct = progressPct(run);
  e.fill.style.width = pct + '%';
  e.bar.setAttribute('data-progress', String(pct));
  e.bar.setAttribute('aria-valuenow', String(pct));
  e.pct.textContent = pct.toFixed(1) + ' %';
  e.statusLine.textContent = run.status === 'running' ? (p ? orDash(p.status) : 'Waiting for progress…') : endedText(run, cancelled);
  const fin = run.status === 'complete' ? finalFigures(run) : null;
  const trades = fin && fin.trades != null ? fin.trades : p ? p.trades_count : null;
  const pnl = fin && fin.pnl != null ? fin.pnl : p ? p.current_pnl : null;
  if (fin && fin.bars != null) setText(e.bars, fmtInt(fin.bars) + ' / ' + fmtInt(fin.bars));
  else if (p) setText(e.bars, fmtInt(p.bars_processed) + ' / ' + fmtInt(p.total_bars));
  if (p) setText(e.date, orDash(p.current_date));
  if (trades != null || p) setText(e.trades, fmtInt(trades));
  e.trades.setAttribute('data-value', isNum(trades) ? String(trades) : '');
  if (pnl != null || p) setText(e.pnl, fmtSigned(pnl));
  e.pnl.setAttribute('data-value', isNum(pnl) ? String(pnl) : '');
  setSign(e.pnl, pnl);
}

/** The run's state in words: running, complete, failed, cancelled, lost. */
export function statusLabel(run) {
  if (run.status === 'error') return isCancelError(run.error) ? 'cancelled' : 'failed';
  return run.status;
}

/** The run's progress in percent, 0 to 100 (100 once complete). */
export function progressPct(run) {
  const p = run.progress;
  let pct = p && isNum(p.progress) ? p.progress : 0;
  if (run.status === 'complete') pct = 100;
  return Math.max(0, Math.min(100, pct));
}

export function renderError(run) {
  const d = run.error;
  const slot = run.els.errorSlot;
  slot.replaceChildren();
  if (!d) return;
  slot.append(h('div', { class: 'error-box', role: 'alert' },
    h('div', { class: 'error-title' }, isCancelError(d) ? 'Backtest cancelled' : 'Backtest failed'),
    h('div', { class: 'error-message' }, orDash(d.error)),
    d.error_details ? h('pre', { class: 'error-details' }, String(d.error_details)) : null));
}

export function renderResults(run) {
  const d = run.complete || run.restResult;
  const slot = run.els.resultSlot;
  slot.replaceChildren();
  if (!d) {
    if (run.status === 'complete') slot.append(h('div', { class: 'muted' }, 'Finished before this page connected; results are not available.'));
    return;
  }
  const cell = (cls, text, extra) => h('td', Object.assign({ class: cls }, extra || {}), text);
  const balance = cell('result-final-balance', fmt(d.final_balance),
    { 'data-value': isNum(d.final_balance) ? String(d.final_balance) : '' });
  const ret = cell('result-return-pct', fmtPct(d.return_pct, 2, true));
  setSign(ret, d.return_pct);
  const sharpe = cell('result-sharpe', fmt(d.sharpe_ratio));
  const rows = [
    ['Final balance', balance, 'Return', ret],
    ['Trades', cell('result-total-trades', fmtInt(d.total_trades)), 'Win rate', cell('result-win-rate', fmtPct(d.win_rate, 1))],
    ['Sharpe', sharpe, 'Max drawdown', cell('result-drawdown', fmtPct(d.drawdown))],
    ['Duration', cell('result-duration', fmtDuration(d.duration_seconds)), '', h('td')],
  ];
  const table = h('table', { class: 'results-table' },
    h('tbody', null, rows.map(([l1, c1, l2, c2]) => h('tr', null, h('th', { scope: 'row' }, l1), c1, h('th', { scope: 'row' }, l2), c2))));
  const section = h('section', { class: 'results' }, h('h3', null, 'Results'), table);

  const res = d.results && typeof d.results === 'object' && !Array.isArray(d.results) ? d.results : {};
  const params = res.parameters && typeof res.parameters === 'object' && !Array.isArray(res.parameters) ? res.parameters : null;
  const chips = [];
  if (params) for (const [k, v] of Object.entries(params)) chips.push(chip(k, v));
  for (const [k, v] of Object.entries(res)) {
    if (k === 'trades' || k === 'parameters') continue;
    if (v === null || typeof v !== 'object') chips.push(chip(k, v));
  }
  if (chips.length) section.append(h('div', { class: 'chips' }, chips));
  if (Array.isArray(res.trades)) section.append(tradeList(res.trades, res.trades_omitted, d.total_trades));
  slot.append(section);
}
export function chip(k, v) {
  const text = v !== null && typeof v === 'object' ? JSON.stringify(v) : (isNum(v) ? String(v) : orDash(v));
  return h('span', { class: 'chip' }, h('span', { class: 'k' }, k + ' '), text);
}
