// luot.js: what every screen shares: the device token from the URL fragment,
// the websocket with resume and jittered reconnect, the offline banner, a
// board model kept exact from snapshots and events, how a visit of several
// stops reads (contract §9: where to go now and next), and how a service's
// capacity and a booking read (§11).
'use strict';
const Luot = (() => {
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };

  // A screen is set up once by URL: /board#token=… (never sent to the server
  // in a request line); the token then lives in this browser's storage.
  function deviceToken() {
    const m = location.hash.match(/token=([^&]+)/);
    if (m) {
      localStorage.setItem('luot.token', decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
    return localStorage.getItem('luot.token');
  }

  function fmtTime(iso) {
    const m = /T(\d\d:\d\d)/.exec(iso || '');
    return m ? m[1] : '';
  }
  // "28/11" of an RFC 3339 time or a day, in the site's own calendar.
  function fmtDay(iso) {
    const m = /^\d{4}-(\d\d)-(\d\d)/.exec(iso || '');
    return m ? m[2] + '/' + m[1] : '';
  }

  // The board model: services, counters, recent calls.
  function Model() {
    this.day = null; this.services = new Map(); this.counters = new Map(); this.recent = [];
    this.events = 0; // snapshots and events taken in, so a slower answer can tell it is stale
  }
  Model.prototype.load = function (st) {
    this.events++;
    this.day = st.day;
    this.services = new Map(st.services.map(s => [s.id, s]));
    this.counters = new Map(st.counters.map(c => [c.id, c]));
    this.recent = st.recent_calls.slice();
  };
  Model.prototype.apply = function (ev) {
    this.events++;
    for (const s of ev.services || []) this.services.set(s.id, Object.assign(this.services.get(s.id) || {}, s));
    const c = ev.counter && this.counters.get(ev.counter);
    if (ev.ticket) this.follow(ev.ticket);
    switch (ev.kind) {
      case 'ticket_called': case 'ticket_recalled': {
        if (c && ev.kind === 'ticket_called') c.serving = ev.ticket;
        const step = stepOf(ev);
        this.recent.unshift({ number: ev.ticket.number, counter: ev.counter, counter_name: ev.counter_name,
          service_name: ev.service_name, at: ev.at, returning: !!(step && step.returning) });
        this.recent = this.recent.slice(0, 10);
        break;
      }
      case 'counter_opened': if (c) c.open = true; break;
      case 'counter_closed': if (c) c.open = false; break;
    }
  };
  // Every ticket event carries the whole ticket as it is now: a counter
  // serves it while a step of it is called there (rule 48's top level shows
  // the called step), and holds its number while a step is held there. So
  // done, no-show, transfer, send, step finished, hold and cancel all free
  // the counter, and a resumed or cancelled held number leaves its list.
  Model.prototype.follow = function (t) {
    const calledAt = t.status === 'called' ? t.counter : null;
    const heldAt = new Set(t.visit
      ? t.visit.steps.filter(s => s.status === 'held').map(s => s.counter)
      : (t.status === 'held' ? [t.counter] : []));
    for (const c of this.counters.values()) {
      if (c.serving && c.serving.id === t.id) c.serving = calledAt === c.id ? t : null;
      else if (calledAt === c.id) c.serving = t;
      const held = c.held || [];
      const has = held.includes(t.number);
      if (heldAt.has(c.id) && !has) c.held = held.concat([t.number]);
      else if (!heldAt.has(c.id) && has) c.held = held.filter(n => n !== t.number);
    }
  };

  // ---- visits (§9)
  const OPEN = new Set(['pending', 'waiting', 'called', 'held']);
  // The step an event is about (rule 55), or null for a ticket without a visit.
  function stepOf(ev) {
    const t = ev.ticket;
    return t && t.visit && ev.step != null ? t.visit.steps[ev.step] || null : null;
  }
  // The step called now, or null.
  function calledStep(t) {
    return t && t.visit ? t.visit.steps.find(s => s.status === 'called') || null : null;
  }
  // Rule 57: the open steps of the lowest stage that has one (now), and
  // those of the next stage after it that has one (next).
  function route(t) {
    const open = t && t.visit ? t.visit.steps.filter(s => OPEN.has(s.status)) : [];
    if (!open.length) return { now: [], next: [] };
    const first = Math.min(...open.map(s => s.stage));
    const later = open.filter(s => s.stage > first);
    const second = later.length ? Math.min(...later.map(s => s.stage)) : null;
    return { now: open.filter(s => s.stage === first), next: open.filter(s => s.stage === second) };
  }
  const places = (steps) => steps.map(s => s.place).join(' + ');

  // ---- capacity (§11, rule 74)
  // What a walk-in can still get, as the board and console say it: "HẾT SỐ"
  // once a capped service is full or closed, "Còn N số" when few are left
  // (null when there is nothing to say), and a note for a service that
  // takes bookings only, or bookings and priority patients.
  const LOW = 10;
  const WALK_INS = { none: 'Chỉ nhận lịch hẹn', priority: 'Lịch hẹn và ưu tiên' };
  function capacity(s) {
    const r = s && s.remaining;
    const state = r === 0 ? { full: true, text: 'HẾT SỐ' }
      : (r != null && r <= LOW) ? { full: false, text: 'Còn ' + r + ' số' } : null;
    return { state: state, note: (s && WALK_INS[s.walk_ins]) || '' };
  }

  // ---- bookings (§11)
  const APPOINTMENT_STATUS = { booked: 'Đã đặt', checked_in: 'Đã lấy số', cancelled: 'Đã huỷ', expired: 'Hết hạn' };

  // connect({token, onWelcome, onState(model, event|null), onError})
  function connect(opts) {
    const model = new Model();
    let ws = null, seq = null, backoff = 500, offlineTimer = null;
    const setOnline = (on) => {
      if (on) { clearTimeout(offlineTimer); offlineTimer = null; document.body.classList.remove('is-offline'); }
      else if (!offlineTimer) offlineTimer = setTimeout(() => document.body.classList.add('is-offline'), 3000);
    };
    const hello = (since) => ws.send(JSON.stringify({ type: 'hello', token: opts.token || null, since: since }));
    function open() {
      ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/ws');
      ws.onopen = () => hello(seq);
      ws.onmessage = (m) => {
        const f = JSON.parse(m.data);
        if (f.type === 'welcome') { backoff = 500; opts.onWelcome && opts.onWelcome(f); }
        else if (f.type === 'snapshot') { seq = f.seq; model.load(f.state); setOnline(true); opts.onState(model, null); }
        else if (f.type === 'event') {
          if (seq !== null && f.seq !== seq + 1) { seq = null; hello(null); return; } // a gap: start afresh
          seq = f.seq;
          if (f.event.kind === 'day_started') { seq = null; hello(null); return; } // a new day: reset
          model.apply(f.event);
          setOnline(true);
          opts.onState(model, f.event);
        } else if (f.type === 'error' && opts.onError) opts.onError(f.error);
        else if (f.type === 'device' && opts.onDevice) opts.onDevice(f.device);
      };
      ws.onclose = () => {
        setOnline(false);
        setTimeout(open, backoff * (0.5 + Math.random() / 2));
        backoff = Math.min(backoff * 2, 10000);
      };
    }
    // After resuming (missed events only), the model is still current.
    open();
    return { model: model, close: () => ws && ws.close() };
  }

  async function api(method, path, token, body) {
    const h = {};
    if (token) h.Authorization = 'Bearer ' + token;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const r = await fetch('/api/v1' + path, { method: method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (e) { /* 204 */ }
    return { status: r.status, data: data };
  }

  return { el, deviceToken, fmtTime, fmtDay, connect, api, stepOf, calledStep, route, places, capacity,
    APPOINTMENT_STATUS };
})();
