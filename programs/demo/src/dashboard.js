// The dashboard's script, an ES module (served at /dashboard.js; see the hooks listed in
// dashboard.html). Its parts are modules of their own, served at /dashboard/NAME.js:
//   util.js        constants, building elements (never HTML), number formats, notices
//   connection.js  the WebSocket and the wire protocol: subscribe, resume, epochs, close codes
//   rest.js        the REST listing of runs and a run's results
//   runs.js        the runs' state, the events applied to it, the render pass, the summary
//   cards.js       a run's card;  chart.js  its P&L chart;  logpane.js  its log pane
//   trades.js      the trade table of a run's results
//   form.js        the start-a-run form
import { connect } from './dashboard/connection.js';
import { loadKnownRuns } from './dashboard/rest.js';
import { renderSummary } from './dashboard/runs.js';
import './dashboard/form.js';

renderSummary();
loadKnownRuns();
connect();
