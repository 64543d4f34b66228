// The dashboard's token (served at /dashboard-auth.js, loaded before /dashboard.js).
//
// A token arrives in the address's fragment (`/#token=JWT`, the URL the demo prints; the
// fragment never reaches a server or a log), is kept in sessionStorage (this tab only)
// and removed from the address bar. dashboard.js sends it as `Authorization: Bearer` on
// every REST call and in a first `{"action":"auth"}` message on the WebSocket, and asks
// here what a close code means. A new `#token=` in the address bar replaces it at once.
//
// Hooks for tests: #auth-message[data-reason] = missing | invalid | expired | forbidden
// | too-many | policy | rate-limited; body[data-auth] = token | none.
(() => {
  'use strict';

  const KEY = 'backtest-stream-token';
  const listeners = [];
  const messageEl = document.getElementById('auth-message');

  /** The token of `#token=...`, removed from the address bar (other fragment parts stay). */
  function takeFromHash() {
    const hash = location.hash.replace(/^#/, '');
    if (!hash) return null;
    const params = new URLSearchParams(hash);
    const token = (params.get('token') || '').trim();
    if (!params.has('token')) return null;
    params.delete('token');
    const rest = params.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
    return token || null;
  }
  function store(value) {
    try {
      if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
    } catch (_) { /* storage disabled: the token lives as long as the page */ }
  }
  function stored() {
    try { return sessionStorage.getItem(KEY) || null; } catch (_) { return null; }
  }

  let token = takeFromHash();
  if (token) store(token); else token = stored();

  /** The token's claims, read without verifying (the server verifies; this is for the UI). */
  function claims() {
    if (!token) return null;
    const part = token.split('.')[1];
    if (!part) return null;
    try {
      const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
      const text = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
      const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
      const value = JSON.parse(new TextDecoder().decode(bytes));
      return value && typeof value === 'object' ? value : null;
    } catch (_) {
      return null;
    }
  }

  const TEXT = {
    missing: 'This dashboard needs a token. Open it with the URL the demo printed (http://…/#token=…), ' +
      'or add #token=YOUR_JWT to the address.',
    invalid: 'The server refused this token',
    expired: 'Your token has expired. Open the dashboard with a new one (add #token=NEW_JWT to the address); ' +
      'the page reconnects by itself then.',
    forbidden: 'Not allowed with this token',
    'too-many': 'Too many connections for this token: close another dashboard tab, then click the connection badge to reconnect.',
    policy: 'The server refused this connection (policy); not reconnecting. Click the connection badge to try again.',
    'rate-limited': 'The server closed the connection: too many messages. Reconnecting after a pause.',
  };

  function show(reason, detail) {
    if (!messageEl) return;
    let text = TEXT[reason] || reason;
    if (detail && (reason === 'invalid' || reason === 'forbidden' || reason === 'policy')) text += ': ' + detail;
    if (reason === 'invalid') text += '. Open the dashboard with a valid token (#token=…).';
    messageEl.textContent = text;
    messageEl.setAttribute('data-reason', reason);
    messageEl.hidden = false;
  }
  function clear() {
    if (!messageEl) return;
    messageEl.hidden = true;
    messageEl.textContent = '';
    messageEl.removeAttribute('data-reason');
  }

  window.addEventListener('hashchange', () => {
    const fresh = takeFromHash();
    if (!fresh) return;
    token = fresh;
    store(fresh);
    document.body.setAttribute('data-auth', 'token');
    clear();
    for (const fn of listeners) fn(fresh);
  });
  document.body.setAttribute('data-auth', token ? 'token' : 'none');

  window.DemoAuth = {
    /** The token, or null. */
    token: () => token,
    claims,
    /** `extra` headers plus `Authorization: Bearer` when there is a token. */
    headers(extra) {
      const h = Object.assign({}, extra || {});
      if (token) h.Authorization = 'Bearer ' + token;
      return h;
    },
    /** Whether the token lets the page follow `topic` whole (true without a token). */
    coversTopic(topic) {
      const c = claims();
      if (!token || !c) return true;
      const t = c.topics;
      return t === '*' || (Array.isArray(t) && (t.includes('*') || t.includes(topic)));
    },
    /** The runs the token names (`runs`). */
    runs() {
      const c = claims();
      return c && Array.isArray(c.runs) ? c.runs.map(String) : [];
    },
    /** Whether the token's `exp` has passed. */
    expired() {
      const c = claims();
      return !!(c && typeof c.exp === 'number' && c.exp * 1000 <= Date.now());
    },
    /** Calls `fn(token)` when a new token comes through the address bar. */
    onNewToken(fn) { listeners.push(fn); },
    show,
    clear,
    /**
     * What to do after the WebSocket closed with `code` (PROTOCOL.md, "Closing"):
     * { retry: 'resume' | 'backoff' | 'manual' | 'token', reason }. 'manual': only when
     * the user clicks the badge; 'token': only when a new token is given.
     */
    afterClose(code, reason) {
      switch (code) {
        case 4004: return { retry: 'token', reason: 'expired' };
        case 4500:
          if (!token) return { retry: 'token', reason: 'missing' };
          return { retry: 'token', reason: /expired/i.test(reason || '') ? 'expired' : 'invalid' };
        case 4503: return { retry: 'backoff', reason: 'rate-limited' };
        case 4504: return { retry: 'manual', reason: 'too-many' };
        case 1008: return { retry: 'manual', reason: 'policy' };
        default: return { retry: 'resume', reason: null };   // 4001-4003, 1001, 1006, ...
      }
    },
    /** The reason to show for a REST answer `status` with the server's `error` text. */
    restReason(status, error) {
      if (status === 401) {
        if (!token) return 'missing';
        return /expired/i.test(error || '') ? 'expired' : 'invalid';
      }
      return status === 403 ? 'forbidden' : null;
    },
  };
})();
