// app.js: the replaydesk browser app in display mode. It connects to
// /ws/{session} on the host that served the page, says Hello with the token
// from the link, paints DisplayFrames, sends keyboard and mouse input, shows
// presence and control, and reconnects with back-off. The session flow is
// docs/live-sessions.md; the bytes are wire.js's.

import * as wire from "./wire.js";
import { Screen } from "./display.js";
import { keyCodes } from "./keycodes.js";

const { T, Cap, Ev, Mode, Role } = wire;
const $ = id => document.getElementById(id);

const ERROR_NAMES = { 1: "version", 2: "malformed", 3: "unauthorized", 4: "no such session", 5: "forbidden", 6: "too slow", 7: "limit", 8: "internal", 9: "shutdown" };
// Errors that a new connection would only repeat.
const PERMANENT = new Set([1, 3, 4, 5]);
const ROLE_NAMES = { 1: "owner", 2: "controller", 3: "viewer", 4: "display" };
const MODE_NAMES = { 1: "display", 2: "dual", 3: "replay" };
const REFUSALS = { 1: "not controller", 2: "viewer only", 3: "stale epoch", 4: "no such user", 5: "bad event", 6: "rate limited" };
const MOVE_INTERVAL = 1000 / 60; // pointer moves are coalesced to 60 a second
const PING_INTERVAL = 2000;

function params() {
  const u = new URL(location.href);
  const m = u.pathname.match(/^\/s\/([^/]+)\/?$/);
  const name = u.searchParams.get("name") || "guest-" + Math.random().toString(36).slice(2, 5);
  return { session: m ? decodeURIComponent(m[1]) : "", token: u.searchParams.get("t") || "", name: clipUTF8(name, 64) };
}

// clipUTF8 cuts s to at most max bytes of UTF-8, at a code point boundary:
// the protocol's limits are in bytes.
function clipUTF8(s, max) {
  const enc = new TextEncoder();
  let out = "", n = 0;
  for (const ch of s) {
    n += enc.encode(ch).length;
    if (n > max) break;
    out += ch;
  }
  return out;
}

class App {
  constructor() {
    this.p = params();
    this.canvas = $("screen");
    this.screen = new Screen(this.canvas);
    this.screen.onError = e => this.showError(e.message);
    this.screen.onFrame = () => { this.frameCount++; };
    this.ws = null;
    this.state = "connecting";
    this.welcome = null;
    this.presence = null;
    this.epoch = 0;
    this.controlMode = 0;
    this.seq = 0;
    this.pingSeq = 0;
    this.rtt = null;
    this.backoff = 500;
    this.stopped = false; // a permanent error: no more reconnects
    this.queue = [];
    this.pendingMove = null;
    this.lastPos = null;
    this.lastMove = -Infinity;
    this.flushTimer = null;
    this.rx = []; // [time, bytes] of the last second
    this.frameTimes = [];
    this.frameCount = 0;
    this.lastError = "";
    this.log = []; // every message received, by type name, for the status and tests
    this.asking = new Set(); // users who asked for control (shown to the owner and holder)
    this.bindInput();
    $("request").onclick = () => this.control(T.ControlRequest, { user: this.me() });
    $("release").onclick = () => this.control(T.ControlRelease, { user: this.me() });
    setInterval(() => this.tick(), 500);
    window.addEventListener("resize", () => this.renderPointers());
    setInterval(() => this.ping(), PING_INTERVAL);
    this.connect();
  }

  me() { return this.welcome ? this.welcome.user : 0; }

  connect() {
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}/ws/${encodeURIComponent(this.p.session)}`;
    this.setConn("connecting");
    let ws;
    try { ws = new WebSocket(url); } catch (e) { this.showError(e.message); this.retry(); return; }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.setConn("handshake");
      this.send({
        type: T.Hello, minor: wire.MINOR,
        caps: Cap.display | Cap.zlib | Cap.palette | Cap.jpeg | Cap.png,
        token: this.p.token, want: Mode.display, name: this.p.name,
      });
    };
    ws.onmessage = ev => {
      if (ws !== this.ws) return;
      if (!(ev.data instanceof ArrayBuffer)) { this.fail(2, "text frame"); return; }
      this.rx.push([performance.now(), ev.data.byteLength]);
      let m;
      try { m = wire.decode(ev.data); } catch (e) {
        // A peer that sends what does not decode gets Error{malformed}.
        this.showError(`malformed message from the server: ${e.message}`);
        this.fail(e.kind === "version" ? 1 : e.kind === "limit" ? 7 : 2, e.message);
        return;
      }
      try { this.handle(m); } catch (e) { this.showError(`${m.typeName}: ${e.message}`); }
    };
    ws.onclose = ev => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.welcome = null;
      const why = ev.reason ? `${ev.code} ${ev.reason}` : `${ev.code}`;
      this.setConn(this.stopped ? "closed" : `disconnected (${why}), retrying`);
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 10000);
    setTimeout(() => this.connect(), wait * (0.75 + Math.random() / 2));
  }

  fail(code, text) {
    this.send({ type: T.Error, code, text: clipUTF8(text, 1024) });
    if (this.ws) this.ws.close(1000, "");
  }

  send(m) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    let b;
    try { b = wire.encode(m); } catch (e) { this.showError(`not sent: ${e.message}`); return false; }
    this.ws.send(b);
    return true;
  }

  handle(m) {
    this.log.push(m.typeName);
    if (this.log.length > 200) this.log.splice(0, 100);
    switch (m.type) {
      case T.Welcome:
        this.welcome = m;
        this.backoff = 500;
        this.screen.reset(); // display starts again at a key frame
        this.lastPos = null;
        this.ping();
        this.setConn("open");
        $("mode").textContent = `mode ${MODE_NAMES[m.mode]}`;
        break;
      case T.Error: {
        const name = ERROR_NAMES[m.code] || `error ${m.code}`;
        this.showError(`${name}: ${m.text}`);
        if (PERMANENT.has(m.code)) this.stopped = true;
        break;
      }
      case T.DisplayFrame:
        this.screen.push(m);
        break;
      case T.Presence:
        this.presence = m;
        for (const u of m.users) if (u.hasControl) this.asking.delete(u.user);
        for (const n of this.asking) if (!m.users.some(u => u.user === n)) this.asking.delete(n);
        this.epoch = m.epoch;
        this.controlMode = m.control;
        this.renderPresence();
        break;
      case T.ControlRequest: // to the owner and the holder: someone asks
        this.epoch = m.epoch;
        this.asking.add(m.user);
        this.flash(`${this.userName(m.user)} asks for control`);
        if (this.presence) this.renderPresence();
        break;
      case T.ControlGrant:
        this.epoch = m.epoch;
        this.flash(`${this.userName(m.to)} has control`);
        break;
      case T.ControlRevoke:
        this.epoch = m.epoch;
        this.flash(`control taken from ${this.userName(m.from)}`);
        break;
      case T.ControlRelease:
        this.epoch = m.epoch;
        this.flash(`${this.userName(m.user)} released control`);
        break;
      case T.InputRefused:
        this.flash(`input refused (${REFUSALS[m.reason] || m.reason}): ${m.text}`);
        break;
      case T.ModeSwitch:
        // A browser only displays: a forced display switch is already where
        // it is; anything else is answered by staying in display.
        if (m.mode !== Mode.display && m.mode !== Mode.auto) {
          this.send({ type: T.ModeSwitch, kind: 1, mode: Mode.display, reason: "this browser shows display frames only" });
        }
        if (m.reason) this.flash(m.reason);
        break;
      case T.Ping:
        this.send({ type: T.Pong, seq: m.seq, echo: m.sent, sent: nowNanos() });
        break;
      case T.Pong:
        if (typeof m.echo === "number" && m.echo <= nowNanos()) {
          this.rtt = (nowNanos() - m.echo) / 1e6;
          $("rtt").textContent = `rtt ${this.rtt.toFixed(1)} ms`;
        }
        break;
      default:
        break; // log, snapshots, estimates: for replay clients
    }
  }

  ping() {
    if (!this.welcome) return; // nothing but the Hello before the Welcome
    this.send({ type: T.Ping, seq: ++this.pingSeq, sent: nowNanos() });
  }

  control(type, fields) {
    if (!this.welcome) return;
    this.send({ type, ...fields, epoch: this.epoch });
  }

  userName(n) {
    const u = this.presence && this.presence.users.find(u => u.user === n);
    return u ? u.name : `user ${n}`;
  }

  renderPresence() {
    const p = this.presence, me = this.me();
    $("control-mode").textContent = p.control === 2 ? "exclusive control" : "shared control";
    const ul = $("users");
    ul.replaceChildren();
    // The owner grants and revokes; the holder may hand control on.
    const owner = this.welcome && this.welcome.role === Role.owner;
    const holder = p.users.some(u => u.user === me && u.hasControl);
    for (const u of p.users) {
      const li = document.createElement("li");
      li.dataset.user = u.user;
      if (u.user === me) li.classList.add("me");
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = `${u.name} (${ROLE_NAMES[u.role]}, ${MODE_NAMES[u.mode]})`;
      li.append(label);
      if (u.hasControl) {
        const c = document.createElement("span");
        c.className = "ctl";
        c.textContent = " ● control";
        li.append(c);
      }
      if (this.asking.has(u.user)) {
        const a = document.createElement("span");
        a.className = "asks";
        a.textContent = " ✋ asks";
        li.append(a);
      }
      if ((owner || (holder && !u.hasControl)) && u.user !== me) {
        const b = document.createElement("button");
        b.type = "button";
        if (u.hasControl) {
          b.textContent = "Revoke";
          b.onclick = () => this.control(T.ControlRevoke, { by: me, from: u.user });
        } else {
          b.textContent = "Grant";
          b.onclick = () => this.control(T.ControlGrant, { by: me, to: u.user });
        }
        li.append(b);
      }
      ul.append(li);
    }
    this.renderPointers();
  }

  renderPointers() {
    const box = $("pointers");
    box.replaceChildren();
    if (!this.presence || !this.canvas.width) return;
    const sx = this.canvas.clientWidth / this.canvas.width, sy = this.canvas.clientHeight / this.canvas.height;
    for (const u of this.presence.users) {
      if (u.user === this.me()) continue;
      const d = document.createElement("div");
      d.className = "pointer";
      d.dataset.user = u.user;
      d.style.left = `${u.x * sx}px`;
      d.style.top = `${u.y * sy}px`;
      d.style.setProperty("--c", `hsl(${(u.user * 67) % 360} 80% 55%)`);
      const s = document.createElement("span");
      s.textContent = u.name;
      d.append(s);
      box.append(d);
    }
  }

  // Input. Events queue in order; pointer moves coalesce into the newest
  // position, sent at most 60 times a second and always before a following
  // button, key or wheel event so the order stays true.
  bindInput() {
    const c = this.canvas;
    const pos = e => {
      const r = c.getBoundingClientRect();
      const x = Math.floor((e.clientX - r.left) * c.width / r.width);
      const y = Math.floor((e.clientY - r.top) * c.height / r.height);
      return { x: Math.max(0, Math.min(c.width - 1, x)), y: Math.max(0, Math.min(c.height - 1, y)) };
    };
    // moveTo queues the pointer's position unless the peer already has it.
    const moveTo = e => {
      const q = pos(e), l = this.lastPos;
      if (this.pendingMove || !l || l.x !== q.x || l.y !== q.y) this.pendingMove = q;
    };
    c.addEventListener("mousemove", e => { moveTo(e); if (this.pendingMove) this.schedule(); });
    c.addEventListener("mousedown", e => {
      c.focus();
      moveTo(e);
      this.event({ type: Ev.button, button: e.button, down: true });
      e.preventDefault();
    });
    c.addEventListener("mouseup", e => { moveTo(e); this.event({ type: Ev.button, button: e.button, down: false }); });
    c.addEventListener("contextmenu", e => e.preventDefault());
    const notches = d => Math.sign(d) * Math.min(10, Math.ceil(Math.abs(d) / 40));
    c.addEventListener("wheel", e => {
      const dx = notches(e.deltaX), dy = notches(e.deltaY);
      if (dx || dy) this.event({ type: Ev.wheel, x: dx, y: dy });
      e.preventDefault();
    }, { passive: false });
    // Keys held when the canvas loses focus are released, or they would
    // stay down in the guest.
    const held = new Set();
    c.addEventListener("blur", () => {
      for (const code of held) this.event({ type: Ev.key, code, down: false });
      held.clear();
    });
    c.addEventListener("keydown", e => {
      const code = keyCodes[e.code];
      if (code !== undefined) {
        held.add(code);
        this.event({ type: Ev.key, code, down: true, repeat: e.repeat });
      }
      // Printable keys also go as text, as the native client sends them.
      if ([...e.key].length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey) this.event({ type: Ev.text, text: e.key });
      e.preventDefault();
    });
    c.addEventListener("keyup", e => {
      const code = keyCodes[e.code];
      if (code !== undefined && held.delete(code)) this.event({ type: Ev.key, code, down: false });
      e.preventDefault();
    });
  }

  canType() { return this.welcome && (this.welcome.role === Role.owner || this.welcome.role === Role.controller); }

  event(ev) {
    if (this.pendingMove) this.takeMove();
    this.queue.push(ev);
    this.schedule();
  }

  takeMove() {
    this.queue.push({ type: Ev.move, ...this.pendingMove });
    this.lastPos = this.pendingMove;
    this.pendingMove = null;
    this.lastMove = performance.now();
  }

  schedule() {
    if (this.flushTimer !== null) return;
    const wait = this.pendingMove && !this.queue.length ? Math.max(0, this.lastMove + MOVE_INTERVAL - performance.now()) : 0;
    this.flushTimer = setTimeout(() => { this.flushTimer = null; this.flush(); }, wait);
  }

  flush() {
    if (this.pendingMove && performance.now() >= this.lastMove + MOVE_INTERVAL - 1) this.takeMove();
    if (this.queue.length) {
      if (!this.canType()) {
        if (this.welcome) this.flash("view only: your role cannot type");
        this.queue = [];
      } else {
        while (this.queue.length) {
          const events = this.queue.splice(0, 256);
          this.send({ type: T.Input, seq: ++this.seq, epoch: this.epoch, events });
        }
      }
    }
    if (this.pendingMove) this.schedule();
  }

  // Status line.
  setConn(s) {
    this.state = s;
    const el = $("conn");
    el.textContent = s;
    el.className = "conn " + (s === "open" ? "open" : s.startsWith("disconnected") || s === "closed" ? "closed" : "");
  }

  flash(text) {
    const el = $("msg");
    el.textContent = text;
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => { if (el.textContent === text) el.textContent = ""; }, 5000);
  }

  showError(text) {
    this.lastError = text;
    const el = $("error");
    el.textContent = text;
    el.hidden = false;
  }

  tick() {
    const now = performance.now();
    while (this.rx.length && this.rx[0][0] < now - 1000) this.rx.shift();
    const bytes = this.rx.reduce((s, [, n]) => s + n, 0);
    $("rate").textContent = `${fmtBytes(bytes)}/s`;
    this.frameTimes.push([now, this.frameCount]);
    while (this.frameTimes.length > 1 && this.frameTimes[0][0] < now - 2000) this.frameTimes.shift();
    const [t0, n0] = this.frameTimes[0];
    const fps = now > t0 ? (this.frameCount - n0) * 1000 / (now - t0) : 0;
    $("fps").textContent = `${fps.toFixed(0)} frames/s`;
  }
}

function nowNanos() { return Math.round(performance.now() * 1e6); }

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

window.replaydesk = new App();
