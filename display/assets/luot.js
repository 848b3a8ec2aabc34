// luot.js: what every screen shares: the device token from the URL fragment,
// the websocket with resume and jittered reconnect, the offline banner, and
// a board model kept exact from snapshots and events.
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

  // The board model: services, counters, recent calls.
  function Model() {
    this.day = null; this.services = new Map(); this.counters = new Map(); this.recent = [];
  }
  Model.prototype.load = function (st) {
    this.day = st.day;
    this.services = new Map(st.services.map(s => [s.id, s]));
    this.counters = new Map(st.counters.map(c => [c.id, c]));
    this.recent = st.recent_calls.slice();
  };
  Model.prototype.apply = function (ev) {
    for (const s of ev.services || []) this.services.set(s.id, Object.assign(this.services.get(s.id) || {}, s));
    const c = ev.counter && this.counters.get(ev.counter);
    switch (ev.kind) {
      case 'ticket_called':
        if (c) c.serving = ev.ticket;
        // falls through
      case 'ticket_recalled':
        this.recent.unshift({ number: ev.ticket.number, counter: ev.counter, counter_name: ev.counter_name,
          service_name: ev.service_name, at: ev.at });
        this.recent = this.recent.slice(0, 10);
        break;
      case 'ticket_done': case 'ticket_no_show': case 'ticket_transferred':
        if (c && c.serving && c.serving.id === ev.ticket.id) c.serving = null;
        break;
      case 'counter_opened': if (c) c.open = true; break;
      case 'counter_closed': if (c) c.open = false; break;
    }
  };

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

  return { el, deviceToken, fmtTime, connect, api };
})();
