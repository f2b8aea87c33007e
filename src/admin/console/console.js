// The Wharf web console: plain JavaScript over the admin API
// (docs/admin-api.md), polled every 2 s. Every value from the broker goes
// into the page as text (textContent), never as HTML.
'use strict';

const POLL_MS = 2000;
const HISTORY = 90; // chart points: three minutes at one every 2 s
const COLOR_IN = '#1f77b4';
const COLOR_OUT = '#d62728';

const $ = (id) => document.getElementById(id);

// One request to /api/v1; the answer as {status, body} (body null when it
// is not JSON, status 0 when the broker did not answer at all).
async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  try {
    // From the origin: a page opened as http://user:password@host/ has a
    // base URL that fetch() refuses to resolve against.
    const r = await fetch(location.origin + '/api/v1' + path, init);
    return { status: r.status, body: await r.json().catch(() => null) };
  } catch (e) {
    return { status: 0, body: { error: 'no answer from the broker (' + e.message + ')' } };
  }
}

const errorOf = (a) => (a.body && a.body.error) || 'HTTP ' + a.status;

function setStatus(text, isError) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
}

// A table cell (td) holding text; num aligns it right.
function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '' : String(text);
  if (cls) td.className = cls;
  return td;
}

function button(label, action, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.dataset.action = action;
  b.addEventListener('click', onClick);
  return b;
}

// Replaces a table's rows; `empty` is shown in one row when there are none.
function fillTable(id, rows, empty) {
  const tbody = $(id).tBodies[0];
  tbody.replaceChildren(...rows);
  if (!rows.length) {
    const tr = document.createElement('tr');
    const td = cell(empty, 'empty');
    td.colSpan = $(id).tHead.rows[0].cells.length;
    tr.append(td);
    tbody.append(tr);
  }
}

const rate = (now, before, seconds) =>
  before === undefined || seconds <= 0 ? null : Math.max(0, now - before) / seconds;
const fmtRate = (r) => (r === null ? '–' : r < 10 ? r.toFixed(1) : Math.round(r).toString());
const qpath = (kind, name) => '/' + kind + '/' + encodeURIComponent(name);

// ---- charts ------------------------------------------------------------

// Draws lines of `series` ({values, color}) on canvas, scaled to the
// largest value, newest point at the right edge.
function drawChart(canvas, series) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const top = 14, bottom = h - 4, left = 4, right = w - 4;
  let max = 1;
  for (const s of series) for (const v of s.values) if (v !== null) max = Math.max(max, v);
  g.strokeStyle = '#d8dee4';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(top + ((bottom - top) * i) / 4) + 0.5;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(right, y);
    g.stroke();
  }
  g.fillStyle = '#5b6773';
  g.font = '11px system-ui, sans-serif';
  g.fillText(fmtRate(max), left + 2, top - 3);
  const step = (right - left) / (HISTORY - 1);
  g.lineWidth = 2;
  for (const s of series) {
    g.strokeStyle = s.color;
    g.beginPath();
    let drawing = false;
    s.values.forEach((v, i) => {
      if (v === null) {
        drawing = false;
        return;
      }
      const x = right - (s.values.length - 1 - i) * step;
      const y = bottom - ((bottom - top) * v) / max;
      if (drawing) g.lineTo(x, y);
      else g.moveTo(x, y);
      drawing = true;
    });
    g.stroke();
  }
}

const history = { in: [], out: [], connections: [] };

function record(key, value) {
  history[key].push(value);
  if (history[key].length > HISTORY) history[key].shift();
}

// ---- what each poll shows ------------------------------------------------

// The previous poll's counters, for rates: when, published, and each
// connection's and queue's counters by id or name.
let previous = null;

function showBroker(b, seconds) {
  const node = b.node ? 'node ' + b.node + ', ' : '';
  $('broker').textContent = 'wharfd ' + b.version + ', ' + node + b.state +
    (b.ready ? '' : ' (not ready: ' + b.not_ready_reason + ')') +
    ', up ' + Math.floor(b.uptime_seconds) + ' s';
  $('fig-connections').textContent = b.connections;
  $('fig-queues').textContent = b.queues;
  $('fig-topics').textContent = b.topics;
  $('fig-stored').textContent = b.store ? b.store.messages : '–';
  const published = rate(b.published, previous && previous.published, seconds);
  $('fig-in').textContent = fmtRate(published);
  record('in', published);
  record('connections', b.connections);
}

function showPair(a) {
  if (a.status === 404) {
    $('pair').textContent = 'single node (no pair configured)';
    return;
  }
  if (a.status !== 200) {
    $('pair').textContent = 'pair: ' + errorOf(a);
    return;
  }
  const p = a.body;
  const link = p.connected ? (p.in_sync ? 'in sync' : 'connected, catching up') : 'peer not connected';
  $('pair').textContent = 'pair: node ' + p.node + ' is ' + p.state + ' (epoch ' + p.epoch +
    '), ' + link + (p.degraded ? ', degraded: confirming alone' : '') +
    ', lag ' + p.lag_records + ' records';
}

function showAlarms(a) {
  if (a.status !== 200 || !Array.isArray(a.body)) {
    // A broker without the alarms resource answers 404: it has none.
    fillTable('alarms', [], a.status === 404 ? 'no alarms configured' : errorOf(a));
    return;
  }
  const rows = a.body.map((al) => {
    const tr = document.createElement('tr');
    tr.dataset.alarm = al.name;
    tr.className = 'alarm-' + al.state.toLowerCase();
    tr.append(cell(al.name), cell(al.state, 'state'),
      cell(al.value === null ? '–' : al.value, 'num'),
      cell(al.comparison + ' ' + al.threshold), cell(al.metric),
      cell(new Date(al.since).toLocaleTimeString()), cell(al.reason));
    return tr;
  });
  fillTable('alarms', rows, 'no alarms configured');
}

function showQueues(a, seconds, now) {
  if (a.status !== 200) {
    fillTable('queues', [], errorOf(a));
    return;
  }
  const rows = a.body.map((q) => {
    const before = previous && previous.queues.get(q.name);
    now.queues.set(q.name, q);
    const tr = document.createElement('tr');
    tr.dataset.queue = q.name;
    tr.append(cell(q.name), cell(q.depth, 'num depth'), cell(q.unacked, 'num'),
      cell(q.consumers, 'num consumers'),
      cell(fmtRate(rate(q.enqueued, before && before.enqueued, seconds)), 'num'),
      cell(fmtRate(rate(q.delivered, before && before.delivered, seconds)), 'num'));
    const actions = cell('');
    actions.append(
      button('Browse', 'browse', () => browse(q.name)),
      button('Send', 'send', () => prepareSend('queues', q.name)),
      button('Purge', 'purge', () => purge(q.name)));
    tr.append(actions);
    return tr;
  });
  fillTable('queues', rows, 'no queues');
}

function showTopics(a) {
  if (a.status !== 200) {
    fillTable('topics', [], errorOf(a));
    return;
  }
  const rows = a.body.map((t) => {
    const tr = document.createElement('tr');
    tr.dataset.topic = t.name;
    tr.append(cell(t.name), cell(t.subscribers, 'num'), cell(t.retained ? 'yes' : 'no'));
    const actions = cell('');
    actions.append(button('Send', 'send', () => prepareSend('topics', t.name)));
    tr.append(actions);
    return tr;
  });
  fillTable('topics', rows, 'no topics');
}

function showConnections(a, seconds, now) {
  if (a.status !== 200) {
    fillTable('connections', [], errorOf(a));
    record('out', null);
    return;
  }
  // Delivered to clients: what each connection open at both polls got.
  let out = previous ? 0 : null;
  const rows = a.body.map((c) => {
    const before = previous && previous.connections.get(c.id);
    if (before !== undefined && out !== null) out += Math.max(0, c.messages_out - before);
    now.connections.set(c.id, c.messages_out);
    const tr = document.createElement('tr');
    tr.dataset.connection = c.id;
    tr.append(cell(c.id, 'num'), cell(c.protocol + (c.tls ? '+tls' : '') + (c.websocket ? ' ws' : '')),
      cell(c.remote), cell(c.principal), cell(new Date(c.since).toLocaleTimeString()),
      cell(c.messages_in, 'num'), cell(c.messages_out, 'num'));
    const actions = cell('');
    if (!c.closing) actions.append(button('Close', 'close', () => closeConnection(c.id)));
    tr.append(actions);
    return tr;
  });
  fillTable('connections', rows, 'no connections');
  const outRate = out === null || seconds <= 0 ? null : out / seconds;
  $('fig-out').textContent = fmtRate(outRate);
  record('out', outRate);
}

async function poll() {
  const [broker, queues, topics, conns, pair, alarms] = await Promise.all([
    api('GET', '/broker'), api('GET', '/queues'), api('GET', '/topics'),
    api('GET', '/connections'), api('GET', '/pair'), api('GET', '/alarms')]);
  if (broker.status !== 200) {
    setStatus('broker: ' + errorOf(broker), true);
    return;
  }
  const now = { at: performance.now(), published: broker.body.published,
    queues: new Map(), connections: new Map() };
  const seconds = previous ? (now.at - previous.at) / 1000 : 0;
  showBroker(broker.body, seconds);
  showQueues(queues, seconds, now);
  showTopics(topics);
  showConnections(conns, seconds, now);
  showPair(pair);
  showAlarms(alarms);
  previous = now;
  drawChart($('chart-messages'), [{ values: history.in, color: COLOR_IN },
    { values: history.out, color: COLOR_OUT }]);
  drawChart($('chart-connections'), [{ values: history.connections, color: COLOR_IN }]);
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

// Polls forever, each poll 2 s after the previous one ended so that a slow
// broker is not asked twice at once.
async function pollLoop() {
  try {
    await poll();
  } catch (e) {
    setStatus('console: ' + e.message, true);
  }
  setTimeout(pollLoop, POLL_MS);
}

// ---- actions -------------------------------------------------------------

async function browse(name) {
  const a = await api('GET', qpath('queues', name) + '/messages?limit=50');
  $('browse').hidden = false;
  $('browse-name').textContent = name;
  if (a.status !== 200) {
    fillTable('browse-messages', [], errorOf(a));
    return;
  }
  const rows = a.body.map((m) => {
    const tr = document.createElement('tr');
    const body = m.body !== undefined ? m.body : '(base64) ' + m.body_base64;
    tr.append(cell(m.id, 'num'), cell(new Date(m.timestamp).toLocaleTimeString()),
      cell(m.delivery_count, 'num'), cell(m.persistent ? 'yes' : 'no'),
      cell(body + (m.body_truncated ? ' …' : ''), 'body'));
    return tr;
  });
  fillTable('browse-messages', rows, 'nothing waiting');
}

function prepareSend(kind, name) {
  $('send-kind').value = kind;
  $('send-name').value = name;
  $('send-body').focus();
}

async function send(event) {
  event.preventDefault();
  const kind = $('send-kind').value;
  const name = $('send-name').value;
  const a = await api('POST', qpath(kind, name) + '/messages',
    { body: $('send-body').value, persistent: $('send-persistent').checked });
  $('send-result').textContent = a.status === 201
    ? 'sent message ' + a.body.id + ' to ' + a.body.kind + ' ' + a.body.destination
    : 'not sent: ' + errorOf(a);
  await poll();
}

async function purge(name) {
  if (!window.confirm('Drop every message waiting in queue ' + name + '?')) return;
  const a = await api('POST', qpath('queues', name) + '/purge');
  setStatus(a.status === 200 ? 'purged ' + a.body.purged + ' from ' + name
    : 'purge ' + name + ': ' + errorOf(a), a.status !== 200);
  await poll();
}

async function closeConnection(id) {
  if (!window.confirm('Close connection ' + id + '?')) return;
  const a = await api('DELETE', '/connections/' + id);
  setStatus(a.status === 200 ? 'closed connection ' + id
    : 'close ' + id + ': ' + errorOf(a), a.status !== 200);
  await poll();
}

$('send-form').addEventListener('submit', send);
pollLoop();
