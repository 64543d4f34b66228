// A run's (or the server's) log pane: bounded, filterable, auto-scrolling.

import { fmtClock, h, levelRank, MAX_LOG_LINES, normLevel, str } from './util.js';

/** A bounded, filterable, auto-scrolling log pane. `ownerId` is the run id or null. */
export function createLogPane(ownerId, title) {
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
