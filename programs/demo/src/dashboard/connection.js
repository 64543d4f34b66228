// The WebSocket connection and the wire protocol (PROTOCOL.md): subscribe, resume, close codes.

import { loadKnownRuns } from './rest.js';
import { applyEvent, markUnfinishedLost } from './runs.js';
import { $, auth, BACKOFF_BASE_MS, BACKOFF_MAX_MS, EVENT_TYPES, HEARTBEAT_MS, isNum, notice, RATE_LIMITED_PAUSE_MS, SILENCE_LIMIT_MS, TOPIC } from './util.js';

let laggedEl = null;
let laggedTotal = 0;
export function onLagged(d) {
  const missed = d && isNum(d.missed) ? d.missed : 0;
  const topic = d && d.topic ? String(d.topic) : TOPIC;
  if (conn.historyGap && topic === TOPIC) {
    // Events from before the server's retained history, announced to a page that
    // subscribed with `since: 0` (each lost stretch before the frame after it, until the
    // replay reaches the head): the snapshot already gave those runs' state.
    conn.historyMissed += missed;
    document.body.setAttribute('data-history-missed', String(conn.historyMissed));
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
export function onServerError(d) {
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
export const badge = $('#connection-status');
export const badgeLabel = $('.label', badge);
export const conn = {
  ws: null,
  epoch: null,          // the server's epoch, from the confirmation
  lastSeq: 0,           // highest seq applied in this epoch
  seen: new Set(),      // seqs applied in this epoch (duplicates are dropped)
  pending: null,        // 'history' | 'resume': what the outstanding subscribe asked for
  historyGap: false,    // a history subscribe is replaying: its lagged notices are history
  historyHead: 0,       // the head seq when the history subscribe was confirmed
  historyMissed: 0,     // events of the history no longer retained
  attempts: 0,
  retryAt: 0,
  retryTimer: null,
  blocked: null,        // 'token' | 'missing' | 'manual': not reconnecting by itself
  countdownTimer: null,
  heartbeat: null,
  lastFrameAt: 0,
};
export let currentSeq = null;  // seq of the frame being applied (log lines keep it for ordering)

export function wsUrl() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}
export function setBadge(state, label) {
  badge.setAttribute('data-state', state);
  badgeLabel.textContent = label;
}
export function send(obj) {
  if (conn.ws && conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(obj));
}
// Every subscribe asks for `since` + `snapshot`: the server replays what it still
// retains after `since` and the snapshot fills only the part no longer retained (the
// latest state of runs from before the history), so frames come in strictly
// increasing seq and none twice.
export function subscribe() {
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
export function subscribeHistory() {
  conn.pending = 'history';
  send({ action: 'subscribe', topic: TOPIC, since: 0, snapshot: true });
}

// ---- tokens (dashboard-auth.js): a token that does not cover the whole topic follows
// the runs it may see one by one (those it names, started, or the listing shows).
export const followed = new Set();
export function wholeTopic() { return auth.coversTopic(TOPIC); }
/** Subscribes to one run: from the start, or (resume) after the last event applied. */
export function subscribeRun(id, resume) {
  const request = { action: 'subscribe', topic: TOPIC, backtest_id: id, snapshot: true, since: 0 };
  if (resume && conn.epoch != null) { request.since = conn.lastSeq; request.epoch = conn.epoch; }
  send(request);
}
export function followRun(id) {
  if (wholeTopic() || followed.has(id)) return;
  followed.add(id);
  subscribeRun(id, false);
}
/** A REST answer refused for the token (401, 403): say why. */
export function restRefused(status, error) {
  const reason = auth.restReason(status, error);
  if (!reason) return;
  auth.show(reason, error ? String(error) : '');
  if (status === 401) block(reason === 'missing' ? 'missing' : 'token');
}
/** Stops reconnecting until a new token ('token', 'missing') or a click ('manual'). */
export function block(kind) {
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

export function connect() {
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
export function heartbeat(ws) {
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
export function closed(code, reason) {
  const next = auth.afterClose(code, reason);
  badge.setAttribute('data-close-code', String(code));    // test hook
  if (next.retry === 'resume') { dropped(); return; }
  if (next.reason) auth.show(next.reason, reason);
  if (next.retry === 'backoff') { dropped(RATE_LIMITED_PAUSE_MS); return; }
  dropped(0, true);
  block(next.retry === 'manual' ? 'manual' : 'token');
}
export function dropped(minDelay, quiet) {
  const ws = conn.ws;
  conn.ws = null;
  if (ws) { ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null; }
  clearInterval(conn.heartbeat);
  conn.pending = null;
  conn.historyGap = false;
  if (!quiet) scheduleReconnect(minDelay);
}
export function scheduleReconnect(minDelay) {
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

export function onFrame(raw) {
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
  // The history replay reached the head it was confirmed at: from now on a lagged
  // notice is news.
  if (conn.historyGap && seq != null && seq >= conn.historyHead) conn.historyGap = false;
  currentSeq = seq;
  try { applyEvent(type, msg.data); } finally { currentSeq = null; }
}
export function pruneSeen() {
  const floor = conn.lastSeq - 20000;
  for (const s of conn.seen) if (s < floor) conn.seen.delete(s);
}

export function onConfirmed(msg) {
  if (msg.topic != null && msg.topic !== TOPIC) return;
  if (msg.backtest_id != null) return onRunConfirmed(msg);
  const asked = conn.pending;
  conn.pending = null;
  const epoch = msg.epoch != null ? String(msg.epoch) : null;
  const newEpoch = epoch != null && conn.epoch != null && epoch !== conn.epoch;
  if (newEpoch) {                                          // the server restarted: old seqs mean nothing
    conn.seen.clear();
    conn.lastSeq = 0;
    // Its unfinished runs died with it, unless the new server shows it knows them
    // (its snapshot and listing, which follow).
    markUnfinishedLost();
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
  // The history a page never had is not news: the lagged notices of its replay, up to
  // the head it was confirmed at, are not a warning.
  if (asked === 'history') {
    conn.historyHead = isNum(msg.seq) ? msg.seq : 0;
    conn.historyGap = conn.historyHead > 0;
    conn.historyMissed = 0;
  }
}

/** A subscription to one run (a token without the whole topic) is confirmed. */
export function onRunConfirmed(msg) {
  const epoch = msg.epoch != null ? String(msg.epoch) : null;
  if (epoch != null && conn.epoch != null && epoch !== conn.epoch) {
    // The server restarted: its seqs are new; every followed run again from the start.
    conn.seen.clear();
    conn.lastSeq = 0;
    conn.epoch = epoch;
    markUnfinishedLost();
    for (const id of followed) subscribeRun(id, false);
    loadKnownRuns();
  }
  if (epoch != null) conn.epoch = epoch;
  conn.attempts = 0;
  clearInterval(conn.countdownTimer);
  setBadge('open', 'Live');
}
