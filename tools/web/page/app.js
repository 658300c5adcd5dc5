// The actorbus console (tools/web): five views over one server-sent event stream (/events:
// the bus and the broker's status) and the JSON /api of actor-web. Everything an agent or a
// client wrote reaches the DOM as text: elements are made with el() and text nodes, never
// from HTML strings, and the server's CSP allows no script but this file.
'use strict';

const TOKEN = new URLSearchParams(location.search).get('token') || '';
const BUS_KEEP = 4000; // bus messages kept in the page, oldest dropped first
const bus = [];        // {seq, topic, msg}, oldest first
let lastSeq = 0, epoch = null;
let status = null, prevStatus = null, rates = {answered: 0, errors: 0};

// ---- helpers ----

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'data') for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else e[k] = v;
  }
  for (const kid of kids) {
    if (kid === null || kid === undefined) continue;
    e.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}
const $ = (id) => document.getElementById(id);
function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }

// Job ids pass 2^53: read them as strings before JSON.parse rounds them.
function parse(text) { return JSON.parse(text.replace(/"job":(\d{15,})/g, '"job":"$1"')); }

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (TOKEN) h['X-Actor-Token'] = TOKEN;
  return h;
}
async function api(path, post) {
  const r = await fetch(path, post ? {method: 'POST', headers: headers({'X-Actor-Web': '1'})}
                                   : {headers: headers()});
  return parse(await r.text());
}
function q(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined) u.set(k, v);
  return u.toString();
}
function short(v, n) {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? '' : s.length > n ? s.slice(0, n) + '…' : s;
}
function clock(ms) { return ms ? new Date(ms).toISOString().slice(11, 23) : ''; }
function isoTime(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : ''; }

// What one agent event says, in a line: its text, calls, responses, state changes, errors.
function summary(ev) {
  if (ev === null || typeof ev !== 'object' || Array.isArray(ev)) return short(ev, 400);
  const out = [];
  const parts = (ev.content && Array.isArray(ev.content.parts)) ? ev.content.parts : [];
  for (const p of parts) {
    if (p.text !== undefined) out.push(String(p.text));
    else if (p.function_call) out.push('call ' + p.function_call.name + '(' +
                                       short(p.function_call.args, 120) + ')');
    else if (p.function_response) out.push('→ ' + p.function_response.name + ': ' +
                                            short(p.function_response.response, 160));
    else if (p.data !== undefined) out.push(short(p.data, 200));
  }
  if (ev.actions && ev.actions.state_delta) out.push('state Δ ' + short(ev.actions.state_delta, 160));
  if (ev.error_code) out.push('error ' + ev.error_code + ': ' + (ev.error_message || ''));
  if (!out.length && !ev.author) out.push(short(ev, 400));
  return out.join(' · ');
}

// ---- the live stream ----

// Live messages may arrive before the history fetched on (re)connecting: seqs dedupe both.
const seen = new Set();
function addBus(m) {
  if (seen.has(m.seq)) return false;
  seen.add(m.seq);
  lastSeq = Math.max(lastSeq, m.seq);
  bus.push(m);
  if (bus.length > BUS_KEEP) for (const old of bus.splice(0, bus.length - BUS_KEEP)) seen.delete(old.seq);
  return true;
}

function connect() {
  const es = new EventSource('/events' + (TOKEN ? '?token=' + encodeURIComponent(TOKEN) : ''));
  es.onopen = () => { $('conn').textContent = 'live'; $('conn').className = 'conn ok'; };
  es.onerror = () => { $('conn').textContent = 'reconnecting…'; $('conn').className = 'conn'; };
  es.addEventListener('hello', async (e) => { // (re)connected: fetch what we missed
    const h = parse(e.data);
    if (h.epoch !== epoch) { epoch = h.epoch; bus.length = 0; lastSeq = 0; seen.clear(); } // new server
    try {
      for (const m of await api('/api/bus?after=' + lastSeq)) addBus(m);
      bus.sort((a, b) => a.seq - b.seq);
      drawBus();
      liveTimeline();
    } catch (err) { /* the stream still runs */ }
  });
  es.addEventListener('status', (e) => onStatus(parse(e.data)));
  es.addEventListener('bus', (e) => {
    if (addBus(parse(e.data))) { drawBusRow(bus[bus.length - 1], true); liveTimeline(); }
  });
}

function onStatus(s) {
  if (s.type !== 'status') return;
  if (status && s.uptime_ms > status.uptime_ms) {
    const dt = (s.uptime_ms - status.uptime_ms) / 1000;
    rates = {answered: (s.answered - status.answered) / dt, errors: (s.errors - status.errors) / dt};
  }
  prevStatus = status;
  status = s;
  drawOverview();
  fillAgents();
}

// ---- overview ----

function card(label, value, bad) {
  return el('div', {className: 'card' + (bad ? ' bad' : '')}, el('b', {}, value), el('span', {}, label));
}

function drawOverview() {
  const s = status;
  const ws = s.workers || [];
  clear($('cards')).append(
    card('workers', ws.length), card('capacity', s.capacity), card('in flight', s.in_flight),
    card('queued', s.queued, s.queued > 0), card('clients', s.clients),
    card('answered', s.answered), card('errors', s.errors, s.errors > 0),
    card('answers/s', rates.answered.toFixed(1)), card('errors/s', rates.errors.toFixed(1), rates.errors > 0),
    card('sessions busy', s.sessions_locked || 0), card('waiting on a session', s.session_waiters || 0),
    card('uptime s', Math.round((s.uptime_ms || 0) / 1000)));
  const tb = clear($('workers-table').tBodies[0]);
  for (const w of ws) {
    const pct = w.capacity ? Math.min(100, 100 * w.in_flight / w.capacity) : 0;
    const bar = el('i'); bar.style.width = pct + '%';
    tb.append(el('tr', {data: {worker: w.name}},
      el('td', {}, el('a', {href: '#workers/' + encodeURIComponent(w.name)}, w.name)),
      el('td', {}, w.capacity), el('td', {}, w.in_flight), el('td', {}, el('span', {className: 'load'}, bar)),
      el('td', {}, (w.agents || []).join(', '))));
  }
  const sel = $('w-name'), cur = sel.value;
  clear(sel);
  for (const w of ws) sel.append(el('option', {value: w.name}, w.name));
  if (cur) sel.value = cur;
}

function fillAgents() {
  const names = new Set();
  for (const w of status.workers || []) for (const a of w.agents || []) names.add(a);
  const dl = clear($('agents'));
  for (const a of [...names].sort()) dl.append(el('option', {value: a}));
}

function busRow(m) {
  const x = m.msg || {};
  const what = x.type === 'event' ? summary(x.event) : x.type === 'result' ? short(x.output, 300)
             : x.type === 'error' ? (x.code + ': ' + x.message) : short(x.data !== undefined ? x.data : x, 300);
  const inv = x.invocation ? el('a', {className: 'inv', href: '#timeline/' + encodeURIComponent(x.invocation)},
                                 x.invocation) : null;
  return el('tr', {data: {seq: m.seq}}, el('td', {}, clock(x.ts_ms)), el('td', {}, m.topic),
            el('td', {}, x.type || ''), el('td', {}, x.worker || ''),
            el('td', {className: 'what'}, inv, inv ? ' ' : null, what));
}
function drawBusRow(m, top) {
  const tb = $('bus-table').tBodies[0];
  tb.insertBefore(busRow(m), top ? tb.firstChild : null);
  while (tb.rows.length > 100) tb.deleteRow(tb.rows.length - 1);
}
function drawBus() {
  clear($('bus-table').tBodies[0]);
  for (const m of bus.slice(-100).reverse()) drawBusRow(m, false);
}

// ---- query ----

let running = null; // {id, controller}

function queryEvent(m) {
  const x = m.event;
  const author = x && typeof x === 'object' && x.author ? x.author : '';
  const li = el('li', {data: {seq: m.seq}}, '#' + m.seq + ' ',
                author ? el('span', {className: 'author'}, author + (x.branch ? ' [' + x.branch + ']' : '')) : null,
                author ? ': ' : '', summary(x));
  $('q-events').append(li);
  if (x && x.invocation_id && !$('q-meta').dataset.inv) {
    $('q-meta').dataset.inv = x.invocation_id;
    $('q-meta').append(' · invocation ', el('a', {className: 'inv',
      href: '#timeline/' + encodeURIComponent(x.invocation_id)}, x.invocation_id));
  }
}

function queryEnd(m) {
  const r = $('q-result');
  r.className = 'result ' + (m.type === 'result' ? 'ok' : 'error');
  r.textContent = m.type === 'result' ? 'result: ' + JSON.stringify(m.output, null, 2)
                                      : 'error ' + m.code + ': ' + m.message;
  r.dataset.type = m.type;
}

async function sendQuery(ev) {
  ev.preventDefault();
  if (running) return;
  let input = $('q-input').value;
  try { input = input.trim() === '' ? null : JSON.parse(input); } catch (e) { /* plain text */ }
  const body = {agent: $('q-agent').value, input: input};
  if ($('q-session').value) body.session = $('q-session').value;
  if ($('q-timeout').value) body.timeout_ms = parseInt($('q-timeout').value, 10);
  clear($('q-events')); clear($('q-result')); $('q-result').className = 'result';
  delete $('q-result').dataset.type; delete $('q-meta').dataset.inv;
  $('q-meta').textContent = 'sending…';
  const controller = new AbortController();
  running = {controller};
  $('q-send').disabled = true; $('q-cancel').disabled = false;
  try {
    const r = await fetch('/api/query', {method: 'POST', body: JSON.stringify(body), signal: controller.signal,
                                         headers: headers({'X-Actor-Web': '1', 'Content-Type': 'application/json'})});
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true});
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl); buf = buf.slice(nl + 1);
        if (!line) continue;
        const m = parse(line);
        if (m.type === 'accepted') { running.id = m.id; $('q-meta').textContent = 'query ' + m.id; }
        else if (m.type === 'event') queryEvent(m);
        else queryEnd(m);
      }
    }
    if (buf.trim()) queryEnd(parse(buf)); // an error answered before the stream began
  } catch (e) {
    if (!$('q-result').dataset.type) queryEnd({type: 'error', code: 'console', message: String(e)});
  }
  running = null;
  $('q-send').disabled = false; $('q-cancel').disabled = true;
}

async function cancelQuery() {
  if (running && running.id) await api('/api/cancel?' + q({id: running.id}), true);
}

// ---- timeline ----

// Every run (a job: the root query or a sub-invocation) of invocation inv, from the bus:
// its worker, when the broker accepted it, its events, and how it ended.
function runsOf(inv) {
  const runs = new Map();
  for (const m of bus) {
    const x = m.msg || {};
    if (x.invocation !== inv || x.job === undefined) continue;
    let r = runs.get(x.job);
    if (!r) runs.set(x.job, r = {job: x.job, agent: x.agent, worker: x.worker || '?', accepted: x.accepted_ms,
                                 events: [], end: null, ok: true, branch: ''});
    if (x.worker) r.worker = x.worker;
    if (x.type === 'event') {
      const e = x.event || {};
      r.events.push({ts: typeof e.ts_ms === 'number' ? e.ts_ms : x.ts_ms, e: e});
      if (e.branch) r.branch = e.branch;
    } else if (x.type === 'result' || x.type === 'error') {
      r.end = x.ts_ms; r.ok = x.type === 'result';
      r.error = x.type === 'error' ? x.code : '';
    }
  }
  return [...runs.values()];
}

function drawTimeline(inv) {
  const box = clear($('tl'));
  $('tl-inv').value = inv || '';
  const recent = clear($('tl-recent'));
  const seen = [];
  for (let i = bus.length - 1; i >= 0 && seen.length < 6; i--) {
    const v = (bus[i].msg || {}).invocation;
    if (v && !seen.includes(v)) seen.push(v);
  }
  for (const v of seen) recent.append(el('a', {className: 'inv', href: '#timeline/' + encodeURIComponent(v)}, v));
  if (!inv) { box.append(el('p', {}, 'Pick an invocation (the bus and the query page link to theirs).')); return; }
  const runs = runsOf(inv);
  if (!runs.length) { box.append(el('p', {}, 'Nothing on the bus about ' + inv + ' yet.')); return; }
  const now = Date.now();
  for (const r of runs) {
    r.start = r.events.length ? Math.min(...r.events.map((x) => x.ts)) : (r.end || now);
    r.last = Math.max(r.end || 0, ...r.events.map((x) => x.ts), r.start);
    if (r.accepted === undefined || r.accepted > r.start) r.accepted = r.start;
  }
  const t0 = Math.min(...runs.map((r) => r.accepted));
  const t1 = Math.max(...runs.map((r) => (r.end ? r.last : now)), t0 + 1);
  const pct = (t) => (100 * (t - t0) / (t1 - t0)) + '%';
  const wid = (a, b) => Math.max(0.3, 100 * (b - a) / (t1 - t0)) + '%';
  box.append(el('div', {className: 'meta'}, inv + ' · ' + runs.length + ' runs · ' + (t1 - t0) + ' ms'));
  const lanes = new Map();
  for (const r of runs.sort((a, b) => a.accepted - b.accepted)) {
    if (!lanes.has(r.worker)) lanes.set(r.worker, []);
    const tracks = lanes.get(r.worker); // parallel runs on one worker take tracks side by side
    let t = tracks.find((tr) => tr.free < r.accepted);
    if (!t) tracks.push(t = {free: 0, runs: []});
    t.free = r.end ? r.last : Infinity;
    t.runs.push(r);
  }
  for (const [worker, tracks] of [...lanes.entries()].sort()) {
    const lane = el('div', {className: 'lane', data: {worker: worker}}, el('div', {className: 'lane-name'}, worker));
    for (const t of tracks) {
      const track = el('div', {className: 'track'});
      for (const r of t.runs) drawRun(track, r, pct, wid, now);
      lane.append(track);
    }
    box.append(lane);
  }
  box.append(el('div', {className: 'axis'}, el('span', {}, clock(t0)), el('span', {}, '+' + (t1 - t0) + ' ms')));
}

function drawRun(track, r, pct, wid, now) {
  const end = r.end ? r.last : now;
  if (r.start > r.accepted) {
    const w = el('div', {className: 'bar wait', title: 'waiting ' + (r.start - r.accepted) + ' ms (queue or session lock)'});
    w.style.left = pct(r.accepted); w.style.width = wid(r.accepted, r.start);
    track.append(w);
  }
  const label = r.agent + (r.branch ? ' [' + r.branch + ']' : '');
  const bar = el('div', {className: 'bar run' + (r.ok ? '' : ' failed'),
                         title: label + ' on ' + r.worker + ': ' + (end - r.start) + ' ms' + (r.error ? ' ' + r.error : ''),
                         data: {job: r.job, agent: r.agent, worker: r.worker, branch: r.branch,
                                start: r.start, end: end, accepted: r.accepted}}, label);
  bar.style.left = pct(r.start); bar.style.width = wid(r.start, end);
  track.append(bar);
  drawAgents(track, r, end, pct, wid);
  const calls = new Map();
  for (const {ts, e} of r.events) {
    const parts = (e.content && Array.isArray(e.content.parts)) ? e.content.parts : [];
    let kind = e.error_code ? 'err' : null, what = summary(e);
    for (const p of parts) {
      if (p.function_call) { calls.set(p.function_call.id, ts); kind = kind || 'tool'; }
      if (p.function_response && calls.has(p.function_response.id)) kind = kind || 'tool';
    }
    if (!kind && e.content && e.content.role === 'model') kind = 'model';
    if (!kind) continue;
    const u = e.usage || e.usage_metadata;
    const tk = el('div', {className: 'tick ' + kind, title: clock(ts) + ' ' + what + (u ? ' tokens ' + JSON.stringify(u) : '')});
    tk.style.left = pct(ts);
    track.append(tk);
  }
}

// The agents inside one run (a sequential agent's steps run in its job): a thin band per
// author, from its first event to the next author's first event (or the run's end).
function drawAgents(track, r, end, pct, wid) {
  const evs = r.events.filter((x) => x.e && x.e.author).sort((a, b) => a.ts - b.ts);
  const segs = [];
  for (const x of evs) {
    const last = segs[segs.length - 1];
    if (last && last.author === x.e.author) continue;
    if (last) last.to = x.ts;
    segs.push({author: x.e.author, from: x.ts, to: end});
  }
  if (segs.length < 2) return;
  segs.forEach((g, i) => {
    const band = el('div', {className: 'seg s' + (i % 2), title: g.author + ': ' + (g.to - g.from) + ' ms',
                            data: {author: g.author}});
    band.style.left = pct(g.from); band.style.width = wid(g.from, g.to);
    track.append(band);
  });
}

let tlShown = null, tlTimer = null;
function liveTimeline() { // redraw at most every 250 ms while the timeline is on screen
  if (tlShown === null || tlTimer) return;
  tlTimer = setTimeout(() => { tlTimer = null; if (tlShown !== null) drawTimeline(tlShown); }, 250);
}

// ---- sessions ----

let sNext = null;
async function listSessions(after) {
  const r = await api('/api/sessions?' + q({app: $('s-app').value, user: $('s-user').value, after: after || '', limit: 20}));
  const tb = clear($('s-table').tBodies[0]);
  if (r.type !== 'result') { tb.append(el('tr', {}, el('td', {colSpan: 5}, 'error ' + r.code + ': ' + r.message))); return; }
  for (const s of r.output.sessions) {
    tb.append(el('tr', {data: {session: s.session}},
      el('td', {}, el('a', {href: '#session/' + encodeURIComponent(s.session)}, s.session)),
      el('td', {}, s.app), el('td', {}, s.user), el('td', {}, s.events), el('td', {}, isoTime(s.updated_ms))));
  }
  sNext = r.output.next;
  $('s-next').disabled = !sNext;
}

async function showSession(id) {
  const box = clear($('s-one'));
  const r = await api('/api/session?' + q({id: id, events: 200}));
  if (r.type !== 'result') { box.append(el('p', {}, 'error ' + r.code + ': ' + r.message)); return; }
  const s = r.output;
  const del = el('button', {className: 'danger', type: 'button', id: 's-delete'}, 'Delete');
  del.addEventListener('click', async () => {
    if (del.dataset.armed !== '1') { del.dataset.armed = '1'; del.textContent = 'Really delete ' + id + '?'; return; }
    const d = await api('/api/session/delete?' + q({id: id}), true);
    clear(box).append(el('p', {id: 's-deleted'}, d.type === 'result' && d.output.deleted ? 'deleted ' + id : 'not deleted'));
    listSessions();
  });
  const evs = el('ol', {className: 'events', id: 's-events'});
  for (const e of s.events || []) {
    evs.append(el('li', {data: {seq: e.seq}}, '#' + e.seq + ' ' + isoTime(e.ts_ms) + ' ',
                  el('span', {className: 'author'}, e.author), ': ', summary(e.event)));
  }
  box.append(el('h3', {}, 'session ' + s.session), el('div', {className: 'meta'},
    'app ' + s.app + ' · user ' + s.user + ' · ' + s.events_total + ' events · created ' +
    isoTime(s.created_ms) + ' · updated ' + isoTime(s.updated_ms) + ' '), del,
    el('h3', {}, 'state'), el('pre', {id: 's-state'}, JSON.stringify(s.state, null, 2)),
    el('h3', {}, 'events (newest ' + (s.events || []).length + ')'), evs);
}

// ---- workers ----

let wTimer = null;
async function showTasks() {
  const name = $('w-name').value;
  if (!name) return;
  const r = await api('/api/tasks?' + q({worker: name}));
  const tb = clear($('w-table').tBodies[0]);
  if (r.type !== 'result') { $('w-meta').textContent = 'error ' + r.code + ': ' + r.message; return; }
  const o = r.output;
  $('w-meta').textContent = o.worker + ' · ' + o.running_jobs + ' running jobs · ' + (o.tasks || []).length + ' tasks';
  for (const t of o.tasks || []) {
    tb.append(el('tr', {data: {task: t.id}}, el('td', {}, t.id), el('td', {}, t.name), el('td', {}, t.state),
      el('td', {}, t.waits_on || ''), el('td', {}, t.waiting_ms), el('td', {}, t.cancel_requested ? 'yes' : ''),
      el('td', {}, t.job === undefined ? '' : t.job)));
  }
}

// ---- routing ----

function route() {
  const h = decodeURIComponent(location.hash.slice(1) || 'overview');
  const [view, ...rest] = h.split('/');
  const arg = rest.join('/');
  const page = view === 'session' ? 'sessions' : view;
  for (const p of document.querySelectorAll('.page')) p.classList.toggle('on', p.id === 'page-' + page);
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('on', a.id === 'nav-' + page);
  tlShown = page === 'timeline' ? arg : null;
  if (page === 'timeline') drawTimeline(arg);
  if (page === 'sessions') { listSessions(); if (view === 'session' && arg) showSession(arg); else clear($('s-one')); }
  if (page === 'workers' && arg) {
    if (![...$('w-name').options].some((o) => o.value === arg)) $('w-name').append(el('option', {value: arg}, arg));
    $('w-name').value = arg; showTasks();
  }
  document.body.dataset.view = page;
}

window.addEventListener('DOMContentLoaded', () => {
  $('query-form').addEventListener('submit', sendQuery);
  $('q-cancel').addEventListener('click', cancelQuery);
  $('tl-form').addEventListener('submit', (e) => { e.preventDefault(); location.hash = 'timeline/' + encodeURIComponent($('tl-inv').value); });
  $('s-form').addEventListener('submit', (e) => { e.preventDefault(); listSessions(); });
  $('s-next').addEventListener('click', () => listSessions(sNext));
  $('w-form').addEventListener('submit', (e) => { e.preventDefault(); showTasks(); });
  $('w-auto').addEventListener('change', () => {
    clearInterval(wTimer); wTimer = $('w-auto').checked ? setInterval(showTasks, 1000) : null;
  });
  window.addEventListener('hashchange', route);
  route();
  connect();
});
