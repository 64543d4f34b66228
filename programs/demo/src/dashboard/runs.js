// The runs the page shows: their state, the events applied to it, and the render pass.

import { buildCard, renderError, renderMeta, renderProgress, renderResults } from './cards.js';
import { addPoint, drawChart, resizeObserver } from './chart.js';
import { currentSeq } from './connection.js';
import { createLogPane } from './logpane.js';
import { removeRow, renderRow } from './runs-table.js';
import { $, isNum, pick } from './util.js';

// ------------------------------------------------------------------ render scheduling
// Events can arrive by the thousand per second; DOM work is coalesced into one pass per frame.
export const dirtyRuns = new Set();
let flushPending = false;
export function scheduleFlush() {
  if (flushPending) return;
  flushPending = true;
  const go = () => { if (flushPending) { flushPending = false; flush(); } };
  requestAnimationFrame(go);
  setTimeout(go, 200);            // rAF does not run in background tabs
}
export function markDirty(run, part) {
  run.dirty.add(part);
  dirtyRuns.add(run);
  scheduleFlush();
}
export function flush() {
  for (const run of dirtyRuns) {
    if (!run.card) continue;
    const parts = run.dirty;
    if (parts.has('meta')) renderMeta(run);
    if (parts.has('progress') || parts.has('status') || parts.has('result')) renderProgress(run);
    if (parts.has('chart')) drawChart(run);
    if (parts.has('result')) renderResults(run);
    if (parts.has('error')) renderError(run);
    if (parts.has('logs')) run.log.flush();
    if (parts.has('meta') || parts.has('progress') || parts.has('status') || parts.has('result')) renderRow(run);
    parts.clear();
  }
  dirtyRuns.clear();
  if (globalLog) globalLog.flush();
  renderSummary();
}

export const globalLogDetails = $('#global-log');
let globalLog = null;
export function globalLogPane() {
  if (!globalLog) {
    globalLog = createLogPane(null, 'Log');
    globalLogDetails.append(globalLog.root);
    globalLogDetails.hidden = false;
  }
  return globalLog;
}

// ------------------------------------------------------------------ runs
export const runs = new Map();          // backtest_id -> run state
export const dismissed = new Set();     // ids the user removed from view
export const runsEl = $('#runs');
export const runsEmpty = $('#runs-empty');
export const clearFinishedBtn = $('#clear-finished');

/**
 * The run `id`, created (with its card) when the page did not know it. A run marked lost
 * is one the server that restarted no longer knew: news of that id (from the new
 * server's events or listing, or a start) is a new run, so it starts afresh.
 */
export function getRun(id) {
  const key = String(id);
  if (dismissed.has(key)) return null;
  let run = runs.get(key);
  if (run && run.status === 'lost') {
    discardRun(run);
    run = null;
  }
  if (!run) {
    run = {
      id: key,
      status: 'running',
      meta: {},
      progress: null,
      points: [],
      complete: null,
      error: null,
      restResult: null,
      hoverX: null,
      dirty: new Set(),
      card: null,
      els: {},
      log: null,
    };
    runs.set(key, run);
    buildCard(run);
    markDirty(run, 'meta');
    markDirty(run, 'progress');
    markDirty(run, 'chart');
  }
  return run;
}
/** Whether the run has ended: complete, failed (or cancelled), or lost with a server. */
export const isTerminal = (run) => run.status === 'complete' || run.status === 'error' || run.status === 'lost';

/** The user removed the run from view: its later events are ignored. */
export function removeRun(run) {
  dismissed.add(run.id);
  discardRun(run);
  renderSummary();
}
function discardRun(run) {
  runs.delete(run.id);
  dirtyRuns.delete(run);
  if (resizeObserver) resizeObserver.unobserve(run.els.chartWrap);
  if (run.card) run.card.remove();
  run.card = null;
  removeRow(run);
}

/**
 * The server restarted (a new epoch): the runs that had not ended will never end there.
 * They are marked lost until the new server shows it knows them (see getRun).
 */
export function markUnfinishedLost() {
  for (const run of runs.values()) {
    if (isTerminal(run)) continue;
    run.status = 'lost';
    markDirty(run, 'status');
    markDirty(run, 'chart');
  }
}

export function renderSummary() {
  let running = 0, done = 0, failed = 0, lost = 0;
  for (const r of runs.values()) {
    if (r.status === 'complete') done++;
    else if (r.status === 'error') failed++;
    else if (r.status === 'lost') lost++;
    else running++;
  }
  const parts = [];
  if (running) parts.push(running + ' running');
  if (done) parts.push(done + ' complete');
  if (failed) parts.push(failed + ' failed');
  if (lost) parts.push(lost + ' lost');
  const summary = $('#run-summary');
  summary.textContent = parts.join(' · ');
  summary.setAttribute('data-running', String(running));   // test hooks
  summary.setAttribute('data-lost', String(lost));
  runsEmpty.hidden = runs.size > 0;
  clearFinishedBtn.hidden = done + failed + lost === 0;
}
clearFinishedBtn.addEventListener('click', () => {
  for (const r of [...runs.values()]) if (isTerminal(r)) removeRun(r);
});

// ------------------------------------------------------------------ applying events
export function applyEvent(type, d) {
  if (!d || typeof d !== 'object') return;
  if (type === 'log_entry') {
    if (d.backtest_id == null || d.backtest_id === '') {
      globalLogPane().push(d, currentSeq);
      scheduleFlush();
      return;
    }
    const run = getRun(d.backtest_id);
    if (!run) return;
    run.log.push(d, currentSeq);
    markDirty(run, 'logs');
    return;
  }
  if (d.backtest_id == null || d.backtest_id === '') return;
  const run = getRun(d.backtest_id);
  if (!run) return;
  switch (type) {
    case 'backtest_start':
      run.meta = Object.assign({}, run.meta, pick(d, ['variant', 'symbol', 'timeframe', 'start_date', 'end_date', 'timestamp']));
      markDirty(run, 'meta');
      break;
    case 'backtest_progress': {
      const prev = run.progress;
      const x = isNum(d.bars_processed) ? d.bars_processed : (isNum(d.progress) ? d.progress : null);
      if (x != null && isNum(d.current_pnl)) { addPoint(run, x, d.current_pnl); markDirty(run, 'chart'); }
      // An older progress event (history replayed after a snapshot) adds its chart
      // point but must not move the bar backwards.
      if (prev && isNum(prev.bars_processed) && isNum(d.bars_processed) && d.bars_processed < prev.bars_processed) break;
      run.progress = d;
      markDirty(run, 'progress');
      break;
    }
    case 'backtest_complete':
      run.complete = d;
      run.status = 'complete';
      markDirty(run, 'status');
      markDirty(run, 'result');
      break;
    case 'backtest_error':
      run.error = d;
      if (run.status !== 'complete') run.status = 'error';
      markDirty(run, 'status');
      markDirty(run, 'error');
      markDirty(run, 'chart');
      break;
  }
}
