// The P&L chart of a run card, drawn on a canvas.

import { markDirty, runs } from './runs.js';
import { cssVar, fmtCompact, fmtInt, fmtSigned, isCancelError, isNum, MAX_CHART_POINTS } from './util.js';

export const resizeObserver = typeof ResizeObserver === 'function'
  ? new ResizeObserver((entries) => { for (const en of entries) if (en.target._run) markDirty(en.target._run, 'chart'); })
  : null;
let colors = null;
export function chartColors() {
  if (!colors) {
    colors = {
      green: cssVar('--green'), red: cssVar('--red'), text: cssVar('--text'), muted: cssVar('--muted'),
      faint: cssVar('--faint'), border: cssVar('--border'), accent: cssVar('--accent'), bg: cssVar('--panel'),
    };
  }
  return colors;
}
export function redrawAllCharts() { colors = null; for (const r of runs.values()) markDirty(r, 'chart'); }
if (window.matchMedia) {
  const mq = window.matchMedia('(prefers-color-scheme: light)');
  if (mq.addEventListener) mq.addEventListener('change', redrawAllCharts);
}
window.addEventListener('resize', redrawAllCharts);   // also catches devicePixelRatio changes (zoom)

export function addPoint(run, x, y) {
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

/** What the empty chart says, by the run's state. */
function emptyText(run) {
  switch (run.status) {
    case 'complete': return 'The run finished before any progress was charted.';
    case 'lost': return 'No P&L: the server restarted before any progress arrived.';
    case 'error':
      return isCancelError(run.error) ? 'No P&L: the run was cancelled before any progress.'
        : 'No P&L: the run failed before any progress.';
    default: return 'The P&L chart fills in as progress arrives.';
  }
}

export function drawChart(run) {
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
  if (pts.length === 0) chartEmpty.textContent = emptyText(run);
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
