// Helpers of the dashboard's modules: constants, building elements, number formats, notices.

export const TOPIC = 'backtest';
export const MAX_LOG_LINES = 500;          // per run, and for the global pane
export const MAX_CHART_POINTS = 2000;      // downsampled beyond this
export const MAX_TRADE_ROWS = 1000;
export const MAX_TRADE_COLUMNS = 12;
export const HEARTBEAT_MS = 20000;         // ping interval
export const SILENCE_LIMIT_MS = 45000;     // no frame at all for this long: the connection is dead
export const BACKOFF_BASE_MS = 500;
export const BACKOFF_MAX_MS = 10000;
export const NUMERIC_FIELDS = new Set(['bars', 'bar_delay_us', 'fast', 'slow', 'size', 'cash']);
export const LEVEL_RANK = { TRACE: 0, DEBUG: 1, INFO: 2, WARNING: 3, WARN: 3, ERROR: 4, CRITICAL: 4 };
export const EVENT_TYPES = new Set(['backtest_start', 'backtest_progress', 'log_entry', 'backtest_complete', 'backtest_error']);
export const RATE_LIMITED_PAUSE_MS = 30000; // after a 4503 close
export const auth = window.DemoAuth;         // dashboard-auth.js: the token, close codes

/** Builds an element; text goes in as text nodes, attributes via setAttribute. Never HTML. */
export function h(tag, props, ...children) {
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
export const $ = (sel, root = document) => root.querySelector(sel);
export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
export const str = (v) => (v == null ? '' : String(v));
/** `v` when it is a plain object (not null, not an array), else null. */
export const plainObject = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : null);
export const orDash = (v) => (v == null || v === '' ? '—' : String(v));

export function fmt(v, digits = 2) {
  return isNum(v) ? v.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—';
}
export function fmtInt(v) { return isNum(v) ? Math.round(v).toLocaleString() : '—'; }
export function fmtSigned(v, digits = 2) {
  if (!isNum(v)) return '—';
  const sign = v > 0 ? '+' : v < 0 ? '−' : '';
  return sign + fmt(Math.abs(v), digits);
}
export function fmtPct(v, digits = 2, signed = false) {
  return isNum(v) ? (signed ? fmtSigned(v, digits) : fmt(v, digits)) + ' %' : '—';
}
export function fmtDuration(s) {
  if (!isNum(s)) return '—';
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return m + ' min ' + Math.round(s - m * 60) + ' s';
  return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
}
export function fmtCompact(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
  if (a >= 100) return v.toFixed(0);
  return v.toFixed(a >= 10 ? 1 : 2);
}
export function fmtClock(ts) {
  if (typeof ts !== 'string') return '';
  const m = /T(\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)/.exec(ts);
  return m ? m[1] : ts;
}
export function signClass(v) { return isNum(v) ? (v > 0 ? 'pos' : v < 0 ? 'neg' : '') : ''; }
export function setSign(el, v) { el.classList.remove('pos', 'neg'); const c = signClass(v); if (c) el.classList.add(c); }
export function normLevel(level) {
  const l = str(level).toUpperCase();
  return l === '' ? 'INFO' : l;
}
export function levelRank(level) { const r = LEVEL_RANK[level]; return r == null ? 2 : r; }
export function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
export function setText(el, text) { el.textContent = text; el.title = text; }
export function pick(o, keys) {
  const out = {};
  for (const k of keys) if (o[k] != null && o[k] !== '') out[k] = String(o[k]);
  return out;
}

/** A backtest_error of a cancelled run (the runner's message). */
export const isCancelError = (d) => !!d && (d.cancelled === true || /^backtest cancelled/i.test(str(d.error)));

export const noticesEl = $('#notices');
export function notice(kind, cls, icon, text, onClose) {
  const textEl = h('span', { class: 'notice-text' }, text);
  const close = h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Dismiss' }, '×');
  const el = h('div', { class: 'notice ' + kind + ' ' + cls, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'notice-icon', 'aria-hidden': 'true' }, icon), textEl, close);
  close.addEventListener('click', () => { el.remove(); if (onClose) onClose(); });
  noticesEl.append(el);
  el._text = textEl;
  return el;
}
