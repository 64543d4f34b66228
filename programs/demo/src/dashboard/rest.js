// The REST calls that complete what the stream says: the listing of runs, a run's results.

import { followRun, restRefused } from './connection.js';
import { getRun, isTerminal, markDirty } from './runs.js';
import { auth, pick, str } from './util.js';

// ------------------------------------------------------------------ REST
export function normStatus(s) {
  const v = str(s).toLowerCase();
  if (['complete', 'completed', 'done', 'finished', 'success', 'succeeded'].includes(v)) return 'complete';
  if (['error', 'failed', 'failure', 'errored'].includes(v)) return 'error';
  return 'running';
}
let loadingRuns = false;
export async function loadKnownRuns() {
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
export async function loadResult(run) {
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
