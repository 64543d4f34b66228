// The script of dashboard.html (served at /dashboard.js; see the hooks listed there).
(() => {
  'use strict';

  // ------------------------------------------------------------------ constants
  const TOPIC = 'backtest';
  const MAX_LOG_LINES = 500;          // per run, and for the global pane
  const MAX_CHART_POINTS = 2000;      // downsampled beyond this
  const MAX_TRADE_ROWS = 1000;
  const MAX_TRADE_COLUMNS = 12;
  const HEARTBEAT_MS = 20000;         // ping interval
  const SILENCE_LIMIT_MS = 45000;     // no frame at all for this long: the connection is dead
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const NUMERIC_FIELDS = new Set(['bars', 'bar_delay_us', 'fast', 'slow', 'size', 'cash']);
  const LEVEL_RANK = { TRACE: 0, DEBUG: 1, INFO: 2, WARNING: 3, WARN: 3, ERROR: 4, CRITICAL: 4 };
  const EVENT_TYPES = new Set(['backtest_start', 'backtest_progress', 'log_entry', 'backtest_complete', 'backtest_error']);
  const RATE_LIMITED_PAUSE_MS = 30000; // after a 4503 close
  const auth = window.DemoAuth;         // dashboard-auth.js: the token, close codes

  // ------------------------------------------------------------------ helpers
  /** Builds an element; text goes in as text nodes, attributes via setAttribute. Never HTML. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = String(v);
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }
  const $ = (sel, root = document) => root.querySelector(sel);
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const str = (v) => (v == null ? '' : String(v));
  const orDash = (v) => (v == null || v === '' ? '—' : String(v));

  function fmt(v, digits = 2) {
    return isNum(v) ? v.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—';
  }
  function fmtInt(v) { return isNum(v) ? Math.round(v).toLocaleString() : '—'; }
  function fmtSigned(v, digits = 2) {
    if (!isNum(v)) return '—';
    const sign = v > 0 ? '+' : v < 0 ? '−' : '';
    return sign + fmt(Math.abs(v), digits);
  }
  function fmtPct(v, digits = 2, signed = false) {
    return isNum(v) ? (signed ? fmtSigned(v, digits) : fmt(v, digits)) + ' %' : '—';
  }
  function fmtDuration(s) {
    if (!isNum(s)) return '—';
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.round(s - m * 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }
  function fmtCompact(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
    if (a >= 100) return v.toFixed(0);
    return v.toFixed(a >= 10 ? 1 : 2);
  }
  function fmtClock(ts) {
    if (typeof ts !== 'string') return '';
    const m = /T(\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)/.exec(ts);
    return m ? m[1] : ts;
  }
  function signClass(v) { return isNum(v) ? (v > 0 ? 'pos' : v < 0 ? 'neg' : '') : ''; }
  function setSign(el, v) { el.classList.remove('pos', 'neg'); const c = signClass(v); if (c) el.classList.add(c); }
  function normLevel(level) {
    const l = str(level).toUpperCase();
    return l === '' ? 'INFO' : l;
  }
  function levelRank(level) { const r = LEVEL_RANK[level]; return r == null ? 2 : r; }
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  // ------------------------------------------------------------------ render scheduling
  // Events can arrive by the thousand per second; DOM work is coalesced into one pass per frame.
  const dirtyRuns = new Set();
  let flushPending = false;
  function scheduleFlush() {
    if (flushPending) return;
    flushPending = true;
    const go = () => { if (flushPending) { flushPending = false; flush(); } };
    requestAnimationFrame(go);
    setTimeout(go, 200);            // rAF does not run in background tabs
  }
  function markDirty(run, part) {
    run.dirty.add(part);
    dirtyRuns.add(run);
    scheduleFlush();
  }
  function flush() {
    for (const run of dirtyRuns) {
      if (!run.card) continue;
      const parts = run.dirty;
      if (parts.has('meta')) renderMeta(run);
      if (parts.has('progress') || parts.has('status')) renderProgress(run);
      if (parts.has('chart')) drawChart(run);
      if (parts.has('result')) renderResults(run);
      if (parts.has('error')) renderError(run);
      if (parts.has('logs')) run.log.flush();
      parts.clear();
    }
    dirtyRuns.clear();
    if (globalLog) globalLog.flush();
    renderSummary();
  }

  // ------------------------------------------------------------------ log panes
  /** A bounded, filterable, auto-scrolling log pane. `ownerId` is the run id or null. */
  function createLogPane(ownerId, title) {
    const levelSel = h('select', { 'aria-label': 'Minimum log level', class: 'log-level-filter' },
      h('option', { value: 'TRACE' }, 'All levels'),
      h('option', { value: 'DEBUG' }, 'DEBUG +'),
      h('option', { value: 'INFO' }, 'INFO +'),
      h('option', { value: 'WARNING' }, 'WARNING +'),
      h('option', { value: 'ERROR' }, 'ERROR'));
    const textInput = h('input', { type: 'search', placeholder: 'Filter text…', 'aria-label': 'Filter log text', class: 'log-text-filter' });
    const count = h('span', { class: 'log-count' });
    const pane = h('div', { class: 'log-pane', role: 'log', 'aria-label': title });
    const empty = h('div', { class: 'log-empty' }, 'No log lines yet.');
    pane.append(empty);
    const root = h('section', { class: 'log-section' },
      h('div', { class: 'log-toolbar' }, h('h3', null, title), count, levelSel, textInput),
      pane);

    const state = { pending: [], lines: 0, dropped: 0, shown: 0, minRank: 0, text: '', lastSeq: -Infinity };

    function matches(el) {
      return el._rank >= state.minRank && (state.text === '' || el._search.includes(state.text));
    }
    function refilter() {
      let shown = 0;
      for (const el of pane.children) {
        if (!el.classList.contains('log-line')) continue;
        el.hidden = !matches(el);
        if (!el.hidden) shown++;
      }
      state.shown = shown;
      updateCount();
    }
    function updateCount() {
      let t = state.lines + (state.lines === 1 ? ' line' : ' lines');
      if (state.shown !== state.lines) t = state.shown + ' of ' + t;
      if (state.dropped > 0) t += ' · ' + state.dropped.toLocaleString() + ' older dropped';
      count.textContent = t;
    }
    function makeLine(d, seq) {
      const level = normLevel(d.level);
      const where = [str(d.module), str(d.function)].filter(Boolean).join('.') + (d.line != null ? ':' + d.line : '');
      const tip = [where, d.logger_name ? '(' + d.logger_name + ')' : '', str(d.timestamp)].filter(Boolean).join(' ');
      const el = h('div', {
        class: 'log-line',
        'data-backtest-id': d.backtest_id == null ? '' : String(d.backtest_id),
        'data-level': level,
        'data-seq': seq == null ? null : seq,
        title: tip,
      },
      h('span', { class: 'log-time' }, fmtClock(d.timestamp)),
      h('span', { class: 'log-level' }, level),
      h('span', { class: 'log-msg' }, str(d.message)));
      el._rank = levelRank(level);
      el._seq = seq == null ? null : seq;
      el._search = (str(d.message) + ' ' + where + ' ' + level).toLowerCase();
      return el;
    }
    function insert(el) {
      // Replayed lines can arrive older than what is shown: keep the pane in seq order.
      if (el._seq != null && el._seq < state.lastSeq) {
        for (const other of pane.children) {
          if (other._seq != null && other._seq > el._seq) { pane.insertBefore(el, other); return; }
        }
      }
      pane.append(el);
      if (el._seq != null) state.lastSeq = Math.max(state.lastSeq, el._seq);
    }

    levelSel.addEventListener('change', () => { state.minRank = levelRank(levelSel.value); refilter(); });
    let textTimer = null;
    textInput.addEventListener('input', () => {
      clearTimeout(textTimer);
      textTimer = setTimeout(() => { state.text = textInput.value.trim().toLowerCase(); refilter(); }, 120);
    });

    return {
      root,
      hasLines: () => state.lines + state.pending.length > 0,
      push(d, seq) {
        state.pending.push([d, seq]);
        // Lines beyond the bound would be trimmed right away: never build them.
        if (state.pending.length > MAX_LOG_LINES) {
          state.dropped += state.pending.length - MAX_LOG_LINES;
          state.pending.splice(0, state.pending.length - MAX_LOG_LINES);
        }
      },
      flush() {
        if (state.pending.length === 0) return;
        const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
        if (empty.isConnected) empty.remove();
        for (const [d, seq] of state.pending) {
          const el = makeLine(d, seq);
          el.hidden = !matches(el);
          insert(el);
          state.lines++;
          if (!el.hidden) state.shown++;
        }
        state.pending.length = 0;
        while (state.lines > MAX_LOG_LINES) {
          const first = pane.firstElementChild;
          if (!first) break;
          if (!first.hidden) state.shown--;
          first.remove();
          state.lines--;
          state.dropped++;
        }
        updateCount();
        if (atBottom) pane.scrollTop = pane.scrollHeight;
      },
    };
  }

  const globalLogDetails = $('#global-log');
  let globalLog = null;
  function globalLogPane() {
    if (!globalLog) {
      globalLog = createLogPane(null, 'Log');
      globalLogDetails.append(globalLog.root);
      globalLogDetails.hidden = false;
    }
    return globalLog;
  }

  // ------------------------------------------------------------------ runs
  const runs = new Map();          // backtest_id -> run state
  const dismissed = new Set();     // ids the user removed from view
  const runsEl = $('#runs');
  const runsEmpty = $('#runs-empty');
  const clearFinishedBtn = $('#clear-finished');

  function getRun(id) {
    const key = String(id);
    if (dismissed.has(key)) return null;
    let run = runs.get(key);
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
  const isTerminal = (run) => run.status === 'complete' || run.status === 'error';

  function buildCard(run) {
    const e = run.els;
    e.pill = h('span', { class: 'status-pill' }, 'running');
    e.title = h('h2', { class: 'run-title', title: run.id }, run.id);
    e.dismiss = h('button', { class: 'icon-btn', type: 'button', title: 'Remove from view', 'aria-label': 'Remove run from view' }, '×');
    e.cancel = h('button', { class: 'btn small cancel-run', type: 'button', title: 'Stop this run (DELETE /api/v1/backtest/{id})' }, 'Cancel');
    e.meta = h('div', { class: 'meta' });
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
      h('header', { class: 'card-head' }, h('div', { class: 'title-row' }, e.pill, e.title, e.cancel, e.dismiss), e.meta),
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
  async function cancelRun(run) {
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

  /** A backtest_error of a cancelled run (the runner's message). */
  const isCancelError = (d) => !!d && (d.cancelled === true || /^backtest cancelled/i.test(str(d.error)));

  function removeRun(run) {
    dismissed.add(run.id);
    runs.delete(run.id);
    dirtyRuns.delete(run);
    if (resizeObserver) resizeObserver.unobserve(run.els.chartWrap);
    run.card.remove();
    run.card = null;
    renderSummary();
  }

  function renderMeta(run) {
    const m = run.meta;
    const e = run.els;
    e.meta.replaceChildren();
    const parts = [];
    if (m.variant) parts.push(h('span', { class: 'tag variant' }, m.variant));
    if (m.symbol) parts.push(h('span', { class: 'tag symbol' }, m.symbol));
    if (m.timeframe) parts.push(h('span', { class: 'timeframe' }, m.timeframe));
    if (m.start_date || m.end_date) parts.push(h('span', { class: 'dates' }, orDash(m.start_date) + ' → ' + orDash(m.end_date)));
    if (m.timestamp) parts.push(h('span', { class: 'started', title: String(m.timestamp) }, 'started ' + fmtClock(m.timestamp).slice(0, 8)));
    if (parts.length === 0) parts.push(h('span', { class: 'muted' }, 'waiting for the start event…'));
    parts.forEach((p, i) => { if (i > 0) e.meta.append(h('span', { class: 'sep', 'aria-hidden': 'true' }, '·')); e.meta.append(p); });
  }

  function renderProgress(run) {
    const e = run.els;
    const p = run.progress;
    const cancelled = run.status === 'error' && isCancelError(run.error);
    run.card.setAttribute('data-status', run.status);
    if (cancelled) run.card.setAttribute('data-cancelled', 'true');
    e.cancel.hidden = run.status !== 'running';
    e.pill.textContent = cancelled ? 'cancelled' : run.status === 'error' ? 'failed' : run.status;
    let pct = p && isNum(p.progress) ? p.progress : 0;
    if (run.status === 'complete') pct = 100;
    pct = Math.max(0, Math.min(100, pct));
    e.fill.style.width = pct + '%';
    e.bar.setAttribute('data-progress', String(pct));
    e.bar.setAttribute('aria-valuenow', String(pct));
    e.pct.textContent = pct.toFixed(1) + ' %';
    if (run.status === 'complete') e.statusLine.textContent = 'Complete' + (run.complete && run.complete.timestamp ? ' at ' + fmtClock(run.complete.timestamp).slice(0, 8) : '');
    else if (cancelled) e.statusLine.textContent = 'Cancelled';
    else if (run.status === 'error') e.statusLine.textContent = 'Stopped with an error';
    else e.statusLine.textContent = p ? orDash(p.status) : 'Waiting for progress…';
    if (!p) return;
    setText(e.bars, fmtInt(p.bars_processed) + ' / ' + fmtInt(p.total_bars));
    setText(e.date, orDash(p.current_date));
    setText(e.trades, fmtInt(p.trades_count));
    setText(e.pnl, fmtSigned(p.current_pnl));
    setSign(e.pnl, p.current_pnl);
  }

  function setText(el, text) { el.textContent = text; el.title = text; }

  function renderError(run) {
    const d = run.error;
    const slot = run.els.errorSlot;
    slot.replaceChildren();
    if (!d) return;
    slot.append(h('div', { class: 'error-box', role: 'alert' },
      h('div', { class: 'error-title' }, isCancelError(d) ? 'Backtest cancelled' : 'Backtest failed'),
      h('div', { class: 'error-message' }, orDash(d.error)),
      d.error_details ? h('pre', { class: 'error-details' }, String(d.error_details)) : null));
  }

  function renderResults(run) {
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
    if (Array.isArray(res.trades)) section.append(tradeList(res.trades));
    slot.append(section);
  }
  function chip(k, v) {
    const text = v !== null && typeof v === 'object' ? JSON.stringify(v) : (isNum(v) ? String(v) : orDash(v));
    return h('span', { class: 'chip' }, h('span', { class: 'k' }, k + ' '), text);
  }

  /** Collapsible trade list; the table is built on first open. */
  function tradeList(trades) {
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

  function renderSummary() {
    let running = 0, done = 0, failed = 0;
    for (const r of runs.values()) {
      if (r.status === 'complete') done++; else if (r.status === 'error') failed++; else running++;
    }
    const parts = [];
    if (running) parts.push(running + ' running');
    if (done) parts.push(done + ' complete');
    if (failed) parts.push(failed + ' failed');
    $('#run-summary').textContent = parts.join(' · ');
    runsEmpty.hidden = runs.size > 0;
    clearFinishedBtn.hidden = done + failed === 0;
  }
  clearFinishedBtn.addEventListener('click', () => {
    for (const r of [...runs.values()]) if (isTerminal(r)) removeRun(r);
  });

  // ------------------------------------------------------------------ P&L chart
  const resizeObserver = typeof ResizeObserver === 'function'
    ? new ResizeObserver((entries) => { for (const en of entries) if (en.target._run) markDirty(en.target._run, 'chart'); })
    : null;
  let colors = null;
  function chartColors() {
    if (!colors) {
      colors = {
        green: cssVar('--green'), red: cssVar('--red'), text: cssVar('--text'), muted: cssVar('--muted'),
        faint: cssVar('--faint'), border: cssVar('--border'), accent: cssVar('--accent'), bg: cssVar('--panel'),
      };
    }
    return colors;
  }
  function redrawAllCharts() { colors = null; for (const r of runs.values()) markDirty(r, 'chart'); }
  if (window.matchMedia) {
    const mq = window.matchMedia('(prefers-color-scheme: light)');
    if (mq.addEventListener) mq.addEventListener('change', redrawAllCharts);
  }
  window.addEventListener('resize', redrawAllCharts);   // also catches devicePixelRatio changes (zoom)

  function addPoint(run, x, y) {
    const pts = run.points;
    const last = pts[pts.length - 1];
    if (last && x < last.x) {
      // Older than the newest point (history replayed after a snapshot): insert it in
      // bars order, once.
      let lo = 0, hi = pts.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (pts[mid].x < x) lo = mid + 1; else hi = mid; }
      if (pts[lo].x === x) return;
      pts.splice(lo, 0, { x, y });
    } else if (last && x === last.x) {
      last.y = y;
      return;
    } else {
      pts.push({ x, y });
    }
    if (pts.length > MAX_CHART_POINTS) {
      // Halve the resolution, always keeping the first and the newest point.
      const kept = pts.filter((_, i) => i % 2 === 0);
      if (kept[kept.length - 1] !== pts[pts.length - 1]) kept.push(pts[pts.length - 1]);
      run.points = kept;
    }
  }

  function drawChart(run) {
    const { canvas, chartWrap, chartEmpty } = run.els;
    const cssW = chartWrap.clientWidth;
    const cssH = chartWrap.clientHeight;
    if (cssW === 0 || cssH === 0) return;
    const dpr = window.devicePixelRatio || 1;
    const W = Math.round(cssW * dpr);
    const H = Math.round(cssH * dpr);
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const pts = run.points;
    chartEmpty.hidden = pts.length > 0;
    // Test hooks: how many points, from which bar to which.
    canvas.setAttribute('data-points', String(pts.length));
    canvas.setAttribute('data-first-bar', pts.length ? String(pts[0].x) : '');
    canvas.setAttribute('data-last-bar', pts.length ? String(pts[pts.length - 1].x) : '');
    if (pts.length === 0) return;
    const c = chartColors();

    const padL = 52, padR = 14, padT = 24, padB = 20;
    const plotW = cssW - padL - padR;
    const plotH = cssH - padT - padB;
    const total = run.progress && isNum(run.progress.total_bars) ? run.progress.total_bars : 0;
    const xMin = 0;
    const xMax = Math.max(total, pts[pts.length - 1].x, 1);
    let yMin = 0, yMax = 0;
    for (const p of pts) { if (p.y < yMin) yMin = p.y; if (p.y > yMax) yMax = p.y; }
    if (yMax - yMin < 1e-9) { yMax += 1; yMin -= 1; }
    const padY = (yMax - yMin) * 0.08;
    yMax += padY; yMin -= padY;
    const X = (x) => padL + ((x - xMin) / (xMax - xMin)) * plotW;
    const Y = (y) => padT + ((yMax - y) / (yMax - yMin)) * plotH;
    const y0 = Y(0);

    // axes labels and guides
    ctx.font = '10.5px ' + cssVar('--mono');
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    ctx.lineWidth = 1;
    for (const v of [yMax - padY, yMin + padY]) {
      if (Math.abs(Y(v) - y0) < 12) continue;
      ctx.strokeStyle = c.border;
      ctx.setLineDash([]);
      ctx.beginPath(); ctx.moveTo(padL, Math.round(Y(v)) + 0.5); ctx.lineTo(cssW - padR, Math.round(Y(v)) + 0.5); ctx.stroke();
      ctx.fillStyle = c.faint;
      ctx.fillText(fmtCompact(v), padL - 6, Y(v));
    }
    ctx.strokeStyle = c.muted;
    ctx.setLineDash([4, 4]);
    ctx.beginPath(); ctx.moveTo(padL, Math.round(y0) + 0.5); ctx.lineTo(cssW - padR, Math.round(y0) + 0.5); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = c.muted;
    ctx.fillText('0', padL - 6, y0);
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillStyle = c.faint;
    ctx.fillText('bar 0', padL, cssH - 5);
    ctx.textAlign = 'right';
    ctx.fillText(fmtInt(xMax), cssW - padR, cssH - 5);

    // line path, then area and stroke clipped above (green) and below (red) the zero line
    const line = new Path2D();
    pts.forEach((p, i) => (i === 0 ? line.moveTo(X(p.x), Y(p.y)) : line.lineTo(X(p.x), Y(p.y))));
    const area = new Path2D(line);
    area.lineTo(X(pts[pts.length - 1].x), y0);
    area.lineTo(X(pts[0].x), y0);
    area.closePath();
    for (const [top, bottom, color] of [[0, y0, c.green], [y0, cssH, c.red]]) {
      ctx.save();
      ctx.beginPath(); ctx.rect(0, top, cssW, bottom - top); ctx.clip();
      ctx.globalAlpha = 0.16; ctx.fillStyle = color; ctx.fill(area);
      ctx.globalAlpha = 1; ctx.strokeStyle = color; ctx.lineWidth = 1.75; ctx.lineJoin = 'round'; ctx.stroke(line);
      ctx.restore();
    }

    // newest point
    const last = pts[pts.length - 1];
    ctx.fillStyle = last.y >= 0 ? c.green : c.red;
    ctx.beginPath(); ctx.arc(X(last.x), Y(last.y), 3, 0, Math.PI * 2); ctx.fill();

    // hover readout
    if (run.hoverX != null && run.hoverX >= padL - 4) {
      const xv = xMin + ((run.hoverX - padL) / plotW) * (xMax - xMin);
      let best = pts[0];
      for (const p of pts) if (Math.abs(p.x - xv) < Math.abs(best.x - xv)) best = p;
      const px = X(best.x), py = Y(best.y);
      ctx.strokeStyle = c.faint;
      ctx.beginPath(); ctx.moveTo(Math.round(px) + 0.5, padT); ctx.lineTo(Math.round(px) + 0.5, padT + plotH); ctx.stroke();
      ctx.fillStyle = c.text;
      ctx.beginPath(); ctx.arc(px, py, 3.5, 0, Math.PI * 2); ctx.fill();
      const label = 'bar ' + fmtInt(best.x) + '  ' + fmtSigned(best.y);
      ctx.font = '11px ' + cssVar('--mono');
      const tw = ctx.measureText(label).width + 12;
      const bx = Math.min(Math.max(px - tw / 2, padL), cssW - padR - tw);
      ctx.fillStyle = c.bg; ctx.globalAlpha = 0.92;
      ctx.fillRect(bx, 3, tw, 17);
      ctx.globalAlpha = 1; ctx.strokeStyle = c.border; ctx.strokeRect(bx + 0.5, 3.5, tw - 1, 16);
      ctx.fillStyle = c.text; ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
      ctx.fillText(label, bx + 6, 11.5);
    }
  }

  // ------------------------------------------------------------------ applying events
  function applyEvent(type, d) {
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
        break;
    }
  }
  function pick(o, keys) {
    const out = {};
    for (const k of keys) if (o[k] != null && o[k] !== '') out[k] = String(o[k]);
    return out;
  }

  // ------------------------------------------------------------------ notices
  const noticesEl = $('#notices');
  let laggedEl = null;
  let laggedTotal = 0;
  function notice(kind, cls, icon, text, onClose) {
    const textEl = h('span', { class: 'notice-text' }, text);
    const close = h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Dismiss' }, '×');
    const el = h('div', { class: 'notice ' + kind + ' ' + cls, role: kind === 'error' ? 'alert' : 'status' },
      h('span', { class: 'notice-icon', 'aria-hidden': 'true' }, icon), textEl, close);
    close.addEventListener('click', () => { el.remove(); if (onClose) onClose(); });
    noticesEl.append(el);
    el._text = textEl;
    return el;
  }
  function onLagged(d) {
    const missed = d && isNum(d.missed) ? d.missed : 0;
    const topic = d && d.topic ? String(d.topic) : TOPIC;
    if (conn.historyGap && topic === TOPIC) {
      // Events from before the server's retained history, announced to a page that
      // subscribed with `since: 0`: the snapshot already gave those runs' state.
      conn.historyGap = false;
      document.body.setAttribute('data-history-missed', String(missed));
      return;
    }
    laggedTotal += missed;
    const text = laggedTotal.toLocaleString() + (laggedTotal === 1 ? ' event' : ' events') + ' missed on “' + topic +
      '”: some log lines and chart points are not shown; progress and results catch up with the next events.';
    if (!laggedEl || !laggedEl.isConnected) {
      laggedEl = notice('warn', 'lagged-notice', '!', text, () => { laggedTotal = 0; laggedEl = null; });
    } else {
      laggedEl._text.textContent = text;
    }
    laggedEl.setAttribute('data-missed', String(laggedTotal));
    loadKnownRuns();
  }
  function onServerError(d) {
    const code = d && d.code ? String(d.code) : 'error';
    const msg = d && d.error ? String(d.error) : 'unknown error';
    if (code === 'unauthorized' && !auth.token()) {
      // The server wants a token and the page has none: say so, stop retrying.
      auth.show('missing');
      block('missing');
      return;
    }
    if (code === 'unauthorized') auth.show('invalid', msg);
    const el = notice('error', 'server-error-notice', '×', 'Server error (' + code + '): ' + msg);
    setTimeout(() => el.remove(), 20000);
  }

  // ------------------------------------------------------------------ WebSocket connection
  const badge = $('#connection-status');
  const badgeLabel = $('.label', badge);
  const conn = {
    ws: null,
    epoch: null,          // the server's epoch, from the confirmation
    lastSeq: 0,           // highest seq applied in this epoch
    seen: new Set(),      // seqs applied in this epoch (duplicates are dropped)
    pending: null,        // 'history' | 'resume': what the outstanding subscribe asked for
    historyGap: false,    // a history subscribe found older events no longer retained
    attempts: 0,
    retryAt: 0,
    retryTimer: null,
    blocked: null,        // 'token' | 'missing' | 'manual': not reconnecting by itself
    countdownTimer: null,
    heartbeat: null,
    lastFrameAt: 0,
  };
  let currentSeq = null;  // seq of the frame being applied (log lines keep it for ordering)

  function wsUrl() {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  }
  function setBadge(state, label) {
    badge.setAttribute('data-state', state);
    badgeLabel.textContent = label;
  }
  function send(obj) {
    if (conn.ws && conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(obj));
  }
  // Every subscribe asks for `since` + `snapshot`: the server replays what it still
  // retains after `since` and the snapshot fills only the part no longer retained (the
  // latest state of runs from before the history), so frames come in strictly
  // increasing seq and none twice.
  function subscribe() {
    if (!wholeTopic()) {
      // A token without the whole topic: its runs, one by one.
      setBadge('open', 'Live');
      for (const id of auth.runs()) followed.add(id);
      for (const id of followed) subscribeRun(id, true);
      return;
    }
    if (conn.epoch != null) {
      // Reconnect: the events after the last one applied, in this server's epoch.
      conn.pending = 'resume';
      send({ action: 'subscribe', topic: TOPIC, since: conn.lastSeq, epoch: conn.epoch, snapshot: true });
    } else {
      subscribeHistory();
    }
  }
  /** First connect (or a new server epoch): everything the server still retains. */
  function subscribeHistory() {
    conn.pending = 'history';
    send({ action: 'subscribe', topic: TOPIC, since: 0, snapshot: true });
  }

  // ---- tokens (dashboard-auth.js): a token that does not cover the whole topic follows
  // the runs it may see one by one (those it names, started, or the listing shows).
  const followed = new Set();
  function wholeTopic() { return auth.coversTopic(TOPIC); }
  /** Subscribes to one run: from the start, or (resume) after the last event applied. */
  function subscribeRun(id, resume) {
    const request = { action: 'subscribe', topic: TOPIC, backtest_id: id, snapshot: true, since: 0 };
    if (resume && conn.epoch != null) { request.since = conn.lastSeq; request.epoch = conn.epoch; }
    send(request);
  }
  function followRun(id) {
    if (wholeTopic() || followed.has(id)) return;
    followed.add(id);
    subscribeRun(id, false);
  }
  /** A REST answer refused for the token (401, 403): say why. */
  function restRefused(status, error) {
    const reason = auth.restReason(status, error);
    if (!reason) return;
    auth.show(reason, error ? String(error) : '');
    if (status === 401) block(reason === 'missing' ? 'missing' : 'token');
  }
  /** Stops reconnecting until a new token ('token', 'missing') or a click ('manual'). */
  function block(kind) {
    conn.blocked = kind;
    clearTimeout(conn.retryTimer);
    clearInterval(conn.countdownTimer);
    const ws = conn.ws;
    if (ws && kind !== 'manual') {
      conn.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      clearInterval(conn.heartbeat);
      try { ws.close(1000); } catch (_) { /* ignore */ }
    }
    setBadge('closed', kind === 'manual' ? 'Offline · click to retry' : 'Offline · needs a token');
  }
  auth.onNewToken(() => {
    // A new token: connect again with it (the old connection's grants are not ours).
    conn.blocked = null;
    const ws = conn.ws;
    if (ws) {
      conn.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      clearInterval(conn.heartbeat);
      try { ws.close(1000); } catch (_) { /* ignore */ }
    }
    conn.attempts = 0;
    loadKnownRuns();
    connect();
  });

  function connect() {
    clearTimeout(conn.retryTimer);
    clearInterval(conn.countdownTimer);
    conn.retryTimer = null;
    if (conn.ws || conn.blocked) return;
    if (auth.token() && auth.expired()) {
      auth.show('expired');
      block('token');
      return;
    }
    setBadge('connecting', conn.attempts === 0 ? 'Connecting…' : 'Reconnecting…');
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (err) {
      scheduleReconnect();
      return;
    }
    conn.ws = ws;
    ws.onopen = () => {
      if (conn.ws !== ws) return;
      conn.lastFrameAt = Date.now();
      setBadge('open', 'Subscribing…');
      // The token in a first message: never in the URL (logs, history).
      if (auth.token()) send({ action: 'auth', token: auth.token() });
      subscribe();
      clearInterval(conn.heartbeat);
      conn.heartbeat = setInterval(() => heartbeat(ws), HEARTBEAT_MS / 4);
    };
    ws.onmessage = (ev) => {
      if (conn.ws !== ws) return;
      conn.lastFrameAt = Date.now();
      onFrame(ev.data);
    };
    ws.onclose = (ev) => { if (conn.ws === ws) closed(ev.code, ev.reason); };
    ws.onerror = () => { /* a close event follows */ };
  }
  let lastPingAt = 0;
  function heartbeat(ws) {
    if (conn.ws !== ws) return;
    const now = Date.now();
    if (now - conn.lastFrameAt > SILENCE_LIMIT_MS) {      // half-open connection: give up on it
      try { ws.close(); } catch (_) { /* ignore */ }
      dropped();
      return;
    }
    if (now - lastPingAt >= HEARTBEAT_MS) { lastPingAt = now; send({ action: 'ping' }); }
  }
  /** The server closed the connection: what to do depends on the code (PROTOCOL.md). */
  function closed(code, reason) {
    const next = auth.afterClose(code, reason);
    badge.setAttribute('data-close-code', String(code));    // test hook
    if (next.retry === 'resume') { dropped(); return; }
    if (next.reason) auth.show(next.reason, reason);
    if (next.retry === 'backoff') { dropped(RATE_LIMITED_PAUSE_MS); return; }
    dropped(0, true);
    block(next.retry === 'manual' ? 'manual' : 'token');
  }
  function dropped(minDelay, quiet) {
    const ws = conn.ws;
    conn.ws = null;
    if (ws) { ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null; }
    clearInterval(conn.heartbeat);
    conn.pending = null;
    conn.historyGap = false;
    if (!quiet) scheduleReconnect(minDelay);
  }
  function scheduleReconnect(minDelay) {
    clearTimeout(conn.retryTimer);
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** conn.attempts) * (0.8 + Math.random() * 0.4);
    const delay = Math.max(backoff, minDelay || 0);
    conn.attempts++;
    conn.retryAt = Date.now() + delay;
    conn.retryTimer = setTimeout(connect, delay);
    const tick = () => {
      const s = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
      setBadge('closed', s > 0 ? 'Offline · retry in ' + s + ' s' : 'Offline · retrying');
    };
    tick();
    clearInterval(conn.countdownTimer);
    conn.countdownTimer = setInterval(tick, 500);
  }
  badge.addEventListener('click', () => {
    if (conn.ws || (conn.blocked && conn.blocked !== 'manual')) return;
    conn.blocked = null;
    auth.clear();
    conn.attempts = 0;
    connect();
  });
  window.addEventListener('online', () => { if (!conn.ws && !conn.blocked) { conn.attempts = 0; connect(); } });

  function onFrame(raw) {
    if (typeof raw !== 'string') return;
    let msg;
    try { msg = JSON.parse(raw); } catch (_) { return; }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return;
    const type = msg.type;
    if (type === 'subscription_confirmed') return onConfirmed(msg);
    if (type === 'lagged') return onLagged(msg.data);
    if (type === 'error') return onServerError(msg.data);
    if (!EVENT_TYPES.has(type)) return;                     // pong, unsubscribed, anything new
    if (msg.topic != null && msg.topic !== TOPIC) return;
    const seq = isNum(msg.seq) ? msg.seq : null;
    if (seq != null) {
      if (conn.seen.has(seq)) return;                       // duplicate: already applied
      conn.seen.add(seq);
      if (seq > conn.lastSeq) conn.lastSeq = seq;
      if (conn.seen.size > 50000) pruneSeen();
    }
    currentSeq = seq;
    try { applyEvent(type, msg.data); } finally { currentSeq = null; }
  }
  function pruneSeen() {
    const floor = conn.lastSeq - 20000;
    for (const s of conn.seen) if (s < floor) conn.seen.delete(s);
  }

  function onConfirmed(msg) {
    if (msg.topic != null && msg.topic !== TOPIC) return;
    if (msg.backtest_id != null) return onRunConfirmed(msg);
    const asked = conn.pending;
    conn.pending = null;
    const epoch = msg.epoch != null ? String(msg.epoch) : null;
    const newEpoch = epoch != null && conn.epoch != null && epoch !== conn.epoch;
    if (newEpoch) {                                          // the server restarted: old seqs mean nothing
      conn.seen.clear();
      conn.lastSeq = 0;
    }
    if (epoch != null) conn.epoch = epoch;
    if (isNum(msg.seq)) badge.setAttribute('data-head-seq', String(msg.seq));   // test hook
    conn.attempts = 0;
    clearInterval(conn.countdownTimer);
    setBadge('open', 'Live');
    if (asked === 'resume' && newEpoch) {
      // The server restarted: its seqs are new, `since` meant nothing to it. Load the
      // history it retains (the snapshot it just sent is superseded; frames already
      // applied are dropped by seq, and older chart points are inserted in bars order).
      send({ action: 'unsubscribe', topic: TOPIC });
      subscribeHistory();
      loadKnownRuns();
      return;
    }
    if (asked === 'resume' && msg.recovered === false) {
      // Same server, but part of the gap is gone: the snapshot sent with the replay
      // filled in the latest state of those runs; the lagged notice that follows says
      // how much was lost. The listing catches results of runs that ended meanwhile.
      loadKnownRuns();
    }
    // The history a page never had is not news: its lagged notice is not a warning.
    if (asked === 'history') conn.historyGap = msg.recovered === false;
  }

  /** A subscription to one run (a token without the whole topic) is confirmed. */
  function onRunConfirmed(msg) {
    const epoch = msg.epoch != null ? String(msg.epoch) : null;
    if (epoch != null && conn.epoch != null && epoch !== conn.epoch) {
      // The server restarted: its seqs are new; every followed run again from the start.
      conn.seen.clear();
      conn.lastSeq = 0;
      conn.epoch = epoch;
      for (const id of followed) subscribeRun(id, false);
      loadKnownRuns();
    }
    if (epoch != null) conn.epoch = epoch;
    conn.attempts = 0;
    clearInterval(conn.countdownTimer);
    setBadge('open', 'Live');
  }

  // ------------------------------------------------------------------ REST
  function normStatus(s) {
    const v = str(s).toLowerCase();
    if (['complete', 'completed', 'done', 'finished', 'success', 'succeeded'].includes(v)) return 'complete';
    if (['error', 'failed', 'failure', 'errored'].includes(v)) return 'error';
    return 'running';
  }
  let loadingRuns = false;
  async function loadKnownRuns() {
    if (loadingRuns) return;
    loadingRuns = true;
    try {
      const res = await fetch('/api/v1/backtests', { headers: auth.headers({ Accept: 'application/json' }) });
      const body = await res.json().catch(() => null);
      if (!res.ok) { restRefused(res.status, body && body.error); return; }
      const list = body && Array.isArray(body.backtests) ? body.backtests : [];
      for (const item of list) {
        if (!item || typeof item !== 'object' || item.backtest_id == null) continue;
        const run = getRun(item.backtest_id);
        if (!run) continue;
        followRun(run.id);
        const meta = pick(item, ['variant', 'symbol', 'timeframe', 'start_date', 'end_date']);
        for (const [k, v] of Object.entries(meta)) if (!run.meta[k]) run.meta[k] = v;
        markDirty(run, 'meta');
        const st = normStatus(item.status);
        if (st !== 'running' && !isTerminal(run)) {
          run.status = st;
          markDirty(run, 'status');
          if (st === 'complete') loadResult(run);
          if (st === 'error' && !run.error && item.error) { run.error = { error: item.error, error_details: item.error_details, cancelled: item.cancelled === true }; markDirty(run, 'error'); }
        }
      }
    } catch (_) {
      /* the listing is optional */
    } finally {
      loadingRuns = false;
    }
  }
  /** Results of a run that completed before this page saw its backtest_complete. */
  async function loadResult(run) {
    try {
      const res = await fetch('/api/v1/backtest/' + encodeURIComponent(run.id), { headers: auth.headers({ Accept: 'application/json' }) });
      if (!res.ok) { markDirty(run, 'result'); return; }
      const body = await res.json().catch(() => null);
      if (run.complete || !body || typeof body !== 'object') { markDirty(run, 'result'); return; }
      const candidates = [body, body.results, body.result, body.complete, body.data];
      run.restResult = candidates.find((c) => c && typeof c === 'object' && 'final_balance' in c) || null;
    } catch (_) { /* optional */ }
    markDirty(run, 'result');
  }

  // ------------------------------------------------------------------ the form
  const form = $('#run-form');
  const startBtn = $('#start-run');
  const formError = $('#form-error');
  const formOk = $('#form-ok');
  function clearFormErrors() {
    formError.hidden = true;
    formError.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    for (const el of form.querySelectorAll('.field-error')) el.remove();
  }
  function showFormError(field, message) {
    const input = field ? form.elements.namedItem(field) : null;
    formError.textContent = field ? field + ': ' + message : message;
    formError.hidden = false;
    formOk.hidden = true;
    if (input && input.closest) {
      input.setAttribute('aria-invalid', 'true');
      input.closest('.field').append(h('div', { class: 'field-error' }, message));
      input.focus();
    }
  }
  form.addEventListener('input', (ev) => {
    const t = ev.target;
    if (t && t.getAttribute && t.getAttribute('aria-invalid')) {
      t.removeAttribute('aria-invalid');
      const fe = t.closest('.field') && t.closest('.field').querySelector('.field-error');
      if (fe) fe.remove();
    }
  });
  const toggleForm = $('#toggle-form');
  toggleForm.addEventListener('click', () => {
    const collapsed = form.classList.toggle('collapsed');
    toggleForm.setAttribute('aria-expanded', String(!collapsed));
    toggleForm.textContent = collapsed ? 'Show' : 'Hide';
  });
  form.addEventListener('reset', () => { clearFormErrors(); formOk.hidden = true; });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors();
    formOk.hidden = true;
    const body = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.validity && el.validity.badInput) { showFormError(el.name, 'must be a number'); return; }
      const v = String(el.value).trim();
      if (v === '') continue;
      if (NUMERIC_FIELDS.has(el.name)) {
        const n = Number(v);
        if (!Number.isFinite(n)) { showFormError(el.name, 'must be a number'); return; }
        body[el.name] = n;
      } else {
        body[el.name] = v;
      }
    }
    startBtn.disabled = true;
    startBtn.textContent = 'Starting…';
    try {
      const res = await fetch('/api/v1/backtest/run', {
        method: 'POST',
        headers: auth.headers({ 'Content-Type': 'application/json', Accept: 'application/json' }),
        body: JSON.stringify(body),
      });
      const json = await res.json().catch(() => null);
      if (res.ok) {
        const id = json && json.backtest_id != null ? String(json.backtest_id) : null;
        if (id && !wholeTopic()) {
          // The run is ours now: the same token again brings it into this connection's
          // grants (the server adds the runs its subject started), then follow it.
          send({ action: 'auth', token: auth.token() });
          followRun(id);
        }
        formOk.textContent = id ? 'Started ' + id : 'Started.';
        formOk.hidden = false;
        if (id) {
          const run = getRun(id);
          if (run) {
            const meta = pick(body, ['variant', 'symbol', 'timeframe', 'start_date', 'end_date']);
            for (const [k, v] of Object.entries(meta)) if (!run.meta[k]) run.meta[k] = v;
            markDirty(run, 'meta');
            run.card.classList.add('flash');
            setTimeout(() => run.card && run.card.classList.remove('flash'), 1200);
          }
        }
        const idInput = form.elements.namedItem('backtest_id');
        if (idInput) idInput.value = '';                   // ids are unique: do not resend it
      } else {
        const field = json && typeof json.field === 'string' ? json.field : null;
        const message = json && json.error ? String(json.error) : 'the server answered HTTP ' + res.status;
        showFormError(field, message);
        restRefused(res.status, message);
      }
    } catch (err) {
      showFormError(null, 'Could not reach the server: ' + (err && err.message ? err.message : String(err)));
    } finally {
      startBtn.disabled = false;
      startBtn.textContent = 'Start run';
    }
  });

  // ------------------------------------------------------------------ start
  renderSummary();
  loadKnownRuns();
  connect();
})();
