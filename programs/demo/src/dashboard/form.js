// The start-a-run form.

import { followRun, restRefused, send, wholeTopic } from './connection.js';
import { getRun, markDirty } from './runs.js';
import { $, auth, h, NUMERIC_FIELDS, pick } from './util.js';

// ------------------------------------------------------------------ the form
export const form = $('#run-form');
export const startBtn = $('#start-run');
export const formError = $('#form-error');
export const formOk = $('#form-ok');
export function clearFormErrors() {
  formError.hidden = true;
  formError.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.field-error')) el.remove();
}
export function showFormError(field, message) {
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
export const toggleForm = $('#toggle-form');
toggleForm.addEventListener('click', () => {
  const collapsed = form.classList.toggle('collapsed');
  toggleForm.setAttribute('aria-expanded', String(!collapsed));
  toggleForm.textContent = collapsed ? 'Show' : 'Hide';
});
form.addEventListener('reset', () => { clearFormErrors(); formOk.hidden = true; });
// One start at a time: until the server answers, another submit (a second click, Enter,
// requestSubmit) is ignored, so a run is never started twice by accident.
let starting = false;
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (starting) return;
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
  starting = true;
  startBtn.disabled = true;
  startBtn.setAttribute('aria-busy', 'true');
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
    starting = false;
    startBtn.removeAttribute('aria-busy');
    startBtn.disabled = false;
    startBtn.textContent = 'Start run';
  }
});
