// wire.js: the replaydesk wire protocol v1.1 (docs/wire-protocol.md) for the
// browser. decode() refuses every message the Go decoder (shared/wire)
// refuses, with a WireError naming the message, the field and the byte
// offset; encode() writes the canonical form. It knows nothing of sockets,
// canvases or sessions.

export const MAJOR = 1, MINOR = 1;
export const MAX_MESSAGE = 9 << 20;

export const Cap = {
  replay: 1 << 0, display: 1 << 1, zlib: 1 << 2, palette: 1 << 3, jpeg: 1 << 4,
  png: 1 << 5, pageCache: 1 << 6, dualStream: 1 << 7, relay: 1 << 8, multicast: 1 << 9,
};
export const T = {
  Hello: 1, Welcome: 2, Error: 3, LogBlock: 4, SnapshotAnnounce: 5, Input: 6,
  InputRefused: 7, ControlRequest: 8, ControlGrant: 9, ControlRevoke: 10,
  ControlRelease: 11, Presence: 12, ModeSwitch: 13, Estimates: 14,
  DisplayFrame: 15, Ping: 16, Pong: 17, Lag: 18, Routed: 19, Gone: 20, Resume: 21,
  Multicast: 22,
};
export const typeName = Object.fromEntries(Object.entries(T).map(([k, v]) => [v, k]));
export const Role = { owner: 1, controller: 2, viewer: 3, display: 4 };
export const Mode = { auto: 0, display: 1, dual: 2, replay: 3 };
export const Enc = { raw: 1, solid: 2, zlib: 3, palette: 4, jpeg: 5, png: 6 };
export const Ev = { key: 1, text: 2, move: 3, button: 4, wheel: 5 };

const MAX = {
  token: 4096, name: 64, sessionID: 128, text: 1024, params: 65536, cacheFilter: 65536,
  snapshots: 64, events: 256, users: 1024, tiles: 4096, side: 16384, tickRate: 10000,
  user: 65535, logBlock: 9 + (8 << 20), evText: 24, multicast: 4096,
};
const U32 = 2 ** 32 - 1;
const U64 = 2n ** 64n - 1n;
const MAX_OFFSET = 2n ** 62n - 1n;

// WireError is a refused message: type, field ("tiles[3].w"), byte offset,
// reason, and kind ("malformed", "limit", "version" or "unknown type", as
// shared/wire's ErrMalformed, ErrLimit, ErrVersion, ErrUnknownType).
export class WireError extends Error {
  constructor(type, field, offset, reason, kind = "malformed") {
    const name = typeName[type] || `type ${type}`;
    super(`wire: ${name}${field ? "." + field : ""} at byte ${offset}: ${reason}`);
    this.name = "WireError";
    this.type = type; this.field = field; this.offset = offset; this.reason = reason; this.kind = kind;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8enc = new TextEncoder();

class Reader {
  constructor(b, type) { this.b = b; this.off = 1; this.type = type; this.list = ""; this.idx = 0; }
  field(name) {
    if (!this.list) return name;
    return name ? `${this.list}[${this.idx}].${name}` : `${this.list}[${this.idx}]`;
  }
  fail(name, off, reason, kind) { throw new WireError(this.type, this.field(name), off, reason, kind); }
  left() { return this.b.length - this.off; }
  // uvarint returns a Number when the value is a safe integer, else a BigInt.
  uvarint(name, max) {
    const b = this.b, start = this.off;
    let v = 0, i = 0;
    for (; ; i++) {
      if (start + i >= b.length) this.fail(name, start, "truncated varint");
      if (i === 10) this.fail(name, start, "varint overflows 64 bits");
      const c = b[start + i];
      if (i === 9 && c > 1) this.fail(name, start, "varint overflows 64 bits");
      if ((c & 0x80) === 0) break;
    }
    const n = i + 1;
    if (n > 1 && b[start + n - 1] === 0) this.fail(name, start, "non-minimal varint");
    let big = null;
    if (n <= 7) { // at most 49 bits: exact in a Number
      for (let j = n - 1; j >= 0; j--) v = v * 128 + (b[start + j] & 0x7f);
    } else {
      big = 0n;
      for (let j = n - 1; j >= 0; j--) big = (big << 7n) | BigInt(b[start + j] & 0x7f);
      if (big <= BigInt(Number.MAX_SAFE_INTEGER)) { v = Number(big); big = null; }
    }
    if (big !== null) {
      if (big > BigInt(max)) this.fail(name, start, `value ${big} exceeds ${max}`, "limit");
      this.off += n;
      return big;
    }
    if (typeof max === "bigint" ? BigInt(v) > max : v > max) this.fail(name, start, `value ${v} exceeds ${max}`, "limit");
    this.off += n;
    return v;
  }
  svarint(name) {
    const off = this.off;
    const u = this.uvarint(name, U64);
    if (typeof u === "bigint") this.fail(name, off, "value outside int32", "limit");
    const v = u % 2 === 0 ? u / 2 : -(u + 1) / 2;
    if (v < -(2 ** 31) || v > 2 ** 31 - 1) this.fail(name, off, `value ${v} outside int32`, "limit");
    return v;
  }
  u8(name) {
    if (this.off >= this.b.length) this.fail(name, this.off, "truncated");
    return this.b[this.off++];
  }
  enum(name, lo, hi) {
    const off = this.off, v = this.u8(name);
    if (v < lo || v > hi) this.fail(name, off, `invalid value ${v} (want ${lo}..${hi})`);
    return v;
  }
  bool(name) { return this.enum(name, 0, 1) === 1; }
  bytes(name, max) {
    const off = this.off;
    const n = this.uvarint(name, max);
    if (n > this.left()) this.fail(name, off, `length ${n} runs past the end (${this.left()} bytes left)`);
    const out = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }
  str(name, max) {
    const off = this.off, b = this.bytes(name, max);
    try { return utf8.decode(b); } catch { this.fail(name, off, "invalid UTF-8"); }
  }
  hash(name) {
    if (this.left() < 32) this.fail(name, this.off, `truncated: 32 bytes needed, ${this.left()} left`);
    const h = this.b.slice(this.off, this.off + 32);
    this.off += 32;
    return h;
  }
  count(name, max, minSize) {
    const off = this.off, n = this.uvarint(name, max);
    if (n * minSize > this.left()) this.fail(name, off, `${n} elements cannot fit in ${this.left()} bytes`);
    return n;
  }
  user(name) { return this.uvarint(name, MAX.user); }
  target(name) {
    const off = this.off, u = this.user(name);
    if (u === 0) this.fail(name, off, "user 0 is the host, never a participant");
    return u;
  }
  nonzero(name, max, what) {
    const off = this.off, v = this.uvarint(name, max);
    if (v === 0) this.fail(name, off, what);
    return v;
  }
  pos(prefix) {
    return {
      segment: this.uvarint(prefix + "segment", U32), offset: this.uvarint(prefix + "offset", MAX_OFFSET),
      tick: this.uvarint(prefix + "tick", U64), step: this.uvarint(prefix + "step", U64),
    };
  }
  version() {
    const off = this.off, major = this.uvarint("major", U32);
    if (major !== MAJOR) this.fail("major", off, `peer speaks protocol version ${major}, this side speaks ${MAJOR}.${MINOR}`, "version");
    return { major, minor: this.uvarint("minor", U32) };
  }
}

const decoders = {
  [T.Hello](r) {
    const m = r.version();
    m.caps = r.uvarint("caps", U64);
    m.token = r.str("token", MAX.token);
    const off = r.off;
    m.want = r.enum("want", 0, 3);
    if (m.want === Mode.dual) r.fail("want", off, "dual mode cannot be asked for");
    m.name = r.str("name", MAX.name);
    const n = r.count("known_snapshots", MAX.snapshots, 32);
    m.knownSnapshots = [];
    r.list = "known_snapshots";
    for (let i = 0; i < n; i++) { r.idx = i; m.knownSnapshots.push(r.hash("")); }
    r.list = "";
    m.cacheFilter = r.bytes("cache_filter", MAX.cacheFilter);
    return m;
  },
  [T.Welcome](r) {
    const m = r.version();
    m.caps = r.uvarint("caps", U64);
    m.sessionID = r.str("session_id", MAX.sessionID);
    const off = r.off;
    m.user = r.user("user");
    if (m.user === 0) r.fail("user", off, "user 0 is the host, never a client");
    m.role = r.enum("role", 1, 4);
    m.mode = r.enum("mode", 1, 3);
    m.moduleHash = r.hash("module_hash");
    m.params = r.bytes("params", MAX.params);
    m.tickRate = r.nonzero("tick_rate", MAX.tickRate, "tick rate 0");
    m.tick = r.uvarint("tick", U64);
    return m;
  },
  [T.Error](r) {
    return { code: r.nonzero("code", U32, "error code 0"), text: r.str("text", MAX.text) };
  },
  [T.LogBlock](r) {
    const pos = r.pos("pos."), off = r.off, block = r.bytes("block", MAX.logBlock);
    if (block.length < 9) r.fail("block", off, `block of ${block.length} bytes is shorter than its 9-byte header`);
    const n = (block[0] | block[1] << 8 | block[2] << 16 | block[3] << 24) >>> 0;
    if (n !== block.length - 9) r.fail("block", off, `block header says ${n} payload bytes, ${block.length - 9} present`);
    return { pos, block };
  },
  [T.SnapshotAnnounce](r) {
    return {
      number: r.uvarint("number", U64), manifestHash: r.hash("manifest_hash"),
      tick: r.uvarint("tick", U64), step: r.uvarint("step", U64), pos: r.pos("pos."),
    };
  },
  [T.Input](r) {
    const m = { seq: r.uvarint("seq", U64), epoch: r.uvarint("epoch", U64), events: [] };
    const off = r.off, n = r.count("events", MAX.events, 3);
    if (n === 0) r.fail("events", off, "no events");
    r.list = "events";
    for (let i = 0; i < n; i++) { r.idx = i; m.events.push(readEvent(r)); }
    r.list = "";
    return m;
  },
  [T.InputRefused](r) {
    return { seq: r.uvarint("seq", U64), reason: r.enum("reason", 1, 6), text: r.str("text", MAX.text) };
  },
  [T.ControlRequest](r) { return { user: r.target("user"), epoch: r.uvarint("epoch", U64) }; },
  [T.ControlGrant](r) { return { by: r.user("by"), to: r.target("to"), epoch: r.uvarint("epoch", U64) }; },
  [T.ControlRevoke](r) { return { by: r.user("by"), from: r.target("from"), epoch: r.uvarint("epoch", U64) }; },
  [T.ControlRelease](r) { return { user: r.target("user"), epoch: r.uvarint("epoch", U64) }; },
  [T.Presence](r) {
    const m = { control: r.enum("control", 1, 2), epoch: r.uvarint("epoch", U64), users: [] };
    const n = r.count("users", MAX.users, 7);
    r.list = "users";
    for (let i = 0; i < n; i++) {
      r.idx = i;
      const off = r.off, user = r.target("user");
      if (i > 0 && user <= m.users[i - 1].user) r.fail("user", off, `user ${user} after user ${m.users[i - 1].user}: not in ascending order`);
      m.users.push({
        user, name: r.str("name", MAX.name), role: r.enum("role", 1, 4), mode: r.enum("mode", 1, 3),
        hasControl: r.bool("has_control"), x: r.svarint("x"), y: r.svarint("y"),
      });
    }
    r.list = "";
    return m;
  },
  [T.ModeSwitch](r) {
    const kind = r.enum("kind", 1, 3), off = r.off, mode = r.enum("mode", 0, 3);
    if (mode === Mode.auto && kind !== 3) r.fail("mode", off, "auto is only a pin");
    if (mode === Mode.dual && kind === 3) r.fail("mode", off, "dual mode cannot be pinned");
    return { kind, mode, reason: r.str("reason", MAX.text) };
  },
  [T.Estimates](r) {
    return {
      logBytesPerSec: r.uvarint("log_bytes_per_sec", U64), displayBytesPerSec: r.uvarint("display_bytes_per_sec", U64),
      windowMillis: r.nonzero("window_millis", U32, "window of 0 ms"), tick: r.uvarint("tick", U64),
    };
  },
  [T.DisplayFrame](r) {
    const m = { seq: r.uvarint("seq", U64), tick: r.uvarint("tick", U64), key: r.bool("key") };
    m.width = side(r, "width");
    m.height = side(r, "height");
    const n = r.count("tiles", MAX.tiles, 6);
    m.tiles = [];
    r.list = "tiles";
    for (let i = 0; i < n; i++) {
      r.idx = i;
      const t = { x: r.uvarint("x", MAX.side), y: r.uvarint("y", MAX.side) };
      let off = r.off;
      t.w = side(r, "w");
      if (t.x + t.w > m.width) r.fail("w", off, `tile x ${t.x} + w ${t.w} passes the frame's width ${m.width}`);
      off = r.off;
      t.h = side(r, "h");
      if (t.y + t.h > m.height) r.fail("h", off, `tile y ${t.y} + h ${t.h} passes the frame's height ${m.height}`);
      t.encoding = r.enum("encoding", 1, 6);
      off = r.off;
      t.data = r.bytes("data", MAX_MESSAGE);
      const want = t.w * t.h * 4;
      if (t.encoding === Enc.raw && t.data.length !== want) r.fail("data", off, `raw tile ${t.w}x${t.h} needs ${want} bytes, has ${t.data.length}`);
      else if (t.encoding === Enc.solid && t.data.length !== 4) r.fail("data", off, `solid tile needs 4 bytes, has ${t.data.length}`);
      else if (t.data.length === 0) r.fail("data", off, "empty tile data");
      m.tiles.push(t);
    }
    r.list = "";
    return m;
  },
  [T.Ping](r) { return { seq: r.uvarint("seq", U64), sent: r.uvarint("sent", U64) }; },
  [T.Pong](r) { return { seq: r.uvarint("seq", U64), echo: r.uvarint("echo", U64), sent: r.uvarint("sent", U64) }; },
  [T.Lag](r) {
    const replayTick = r.uvarint("replay_tick", U64), off = r.off, receivedTick = r.uvarint("received_tick", U64);
    if (BigInt(receivedTick) < BigInt(replayTick)) r.fail("received_tick", off, `replay tick ${replayTick} is past the received tick ${receivedTick}`);
    return { replayTick, receivedTick, bufferBytes: r.uvarint("buffer_bytes", U64) };
  },
  [T.Routed](r) {
    const client = r.nonzero("client", U32, "client 0");
    return { client, msg: inner(r) };
  },
  // Upstream → relay only; decoded here so that both sides agree on every input.
  [T.Multicast](r) {
    const off = r.off, n = r.count("clients", MAX.multicast, 1);
    if (n === 0) r.fail("clients", off, "no clients");
    const clients = [], seen = new Set();
    for (let i = 0; i < n; i++) {
      const off = r.off, c = r.uvarint("clients", U32);
      if (c === 0 || seen.has(c)) r.fail("clients", off, `client ${c} is 0 or repeated`);
      seen.add(c);
      clients.push(c);
    }
    return { clients, msg: inner(r) };
  },
  [T.Gone](r) { return { client: r.nonzero("client", U32, "client 0"), reason: r.str("reason", MAX.text) }; },
  [T.Resume](r) { return { pos: r.pos("") }; },
};

// inner decodes the message that uses up the rest of a Routed or Multicast.
function inner(r) {
  const off = r.off;
  if (r.left() === 0) r.fail("msg", off, "no inner message");
  const t = r.b[off];
  if (t === T.Routed || t === T.Gone || t === T.Multicast) r.fail("msg", off, `a routed ${typeName[t]}`);
  let msg;
  try { msg = decode(r.b.subarray(off)); } catch (e) {
    if (!(e instanceof WireError)) throw e;
    r.fail("msg", off + e.offset, "inner " + e.message, e.kind);
  }
  r.off = r.b.length;
  return msg;
}

function side(r, name) {
  return r.nonzero(name, MAX.side, `${name} 0`);
}

function readEvent(r) {
  const type = r.enum("type", Ev.key, Ev.wheel);
  const off = r.off, flags = r.u8("flags");
  const allowed = type === Ev.key ? 3 : type === Ev.button ? 1 : 0;
  if (flags & ~allowed) r.fail("flags", off, `flags 0x${flags.toString(16)} not allowed for event type ${type}`);
  const e = { type, down: (flags & 1) !== 0, repeat: (flags & 2) !== 0 };
  switch (type) {
    case Ev.key: e.code = r.uvarint("code", U32); break;
    case Ev.button: e.button = r.uvarint("button", U32); break;
    case Ev.text: {
      const o = r.off;
      e.text = r.str("text", MAX.evText);
      if (e.text === "") r.fail("text", o, "empty text");
      break;
    }
    default: e.x = r.svarint("x"); e.y = r.svarint("y");
  }
  return e;
}

// decode parses one whole wire message (a Uint8Array or ArrayBuffer) into
// {type, name, ...fields}; it throws a WireError for anything malformed.
export function decode(buf) {
  const b = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (b.length === 0) throw new WireError(0, "", 0, "empty message");
  if (b.length > MAX_MESSAGE) throw new WireError(b[0], "", MAX_MESSAGE, `message of ${b.length} bytes exceeds ${MAX_MESSAGE}`, "limit");
  const type = b[0], dec = decoders[type];
  if (!dec) throw new WireError(type, "", 0, `unknown message type ${type}`, "unknown type");
  const r = new Reader(b, type);
  const m = dec(r);
  if (r.off !== b.length) r.fail("", r.off, `${b.length - r.off} trailing bytes`);
  m.type = type;
  m.typeName = typeName[type];
  return m;
}

// Writer builds a message; values may be Numbers or BigInts.
class Writer {
  constructor() { this.buf = new Uint8Array(64); this.n = 0; }
  grow(k) {
    if (this.n + k <= this.buf.length) return;
    const nb = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    nb.set(this.buf.subarray(0, this.n));
    this.buf = nb;
  }
  u8(v) { this.grow(1); this.buf[this.n++] = v; }
  uvarint(v) {
    if (typeof v === "bigint" || v > 2 ** 31) {
      let x = BigInt(v);
      if (x < 0n || x > U64) throw new RangeError(`uvarint ${v} out of range`);
      while (x >= 0x80n) { this.u8(Number(x & 0x7fn) | 0x80); x >>= 7n; }
      this.u8(Number(x));
      return;
    }
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`uvarint ${v} out of range`);
    while (v >= 0x80) { this.u8((v & 0x7f) | 0x80); v >>>= 7; }
    this.u8(v);
  }
  svarint(v) {
    if (!Number.isInteger(v) || v < -(2 ** 31) || v > 2 ** 31 - 1) throw new RangeError(`svarint ${v} out of range`);
    this.uvarint(v >= 0 ? v * 2 : -v * 2 - 1);
  }
  bool(v) { this.u8(v ? 1 : 0); }
  bytes(b) { this.uvarint(b.length); this.grow(b.length); this.buf.set(b, this.n); this.n += b.length; }
  str(s) { this.bytes(utf8enc.encode(s)); }
  raw(b) { this.grow(b.length); this.buf.set(b, this.n); this.n += b.length; }
  done() { return this.buf.slice(0, this.n); }
}

function writeEvent(w, e) {
  w.u8(e.type);
  w.u8((e.down ? 1 : 0) | (e.repeat ? 2 : 0));
  switch (e.type) {
    case Ev.key: w.uvarint(e.code); break;
    case Ev.button: w.uvarint(e.button); break;
    case Ev.text: w.str(e.text); break;
    default: w.svarint(e.x); w.svarint(e.y);
  }
}

const encoders = {
  [T.Hello](w, m) {
    w.uvarint(MAJOR); w.uvarint(m.minor ?? MINOR); w.uvarint(m.caps); w.str(m.token ?? "");
    w.u8(m.want ?? 0); w.str(m.name ?? "");
    const ks = m.knownSnapshots ?? [];
    w.uvarint(ks.length);
    for (const h of ks) w.raw(h);
    w.bytes(m.cacheFilter ?? new Uint8Array(0));
  },
  [T.Error](w, m) { w.uvarint(m.code); w.str(m.text ?? ""); },
  [T.Input](w, m) {
    w.uvarint(m.seq); w.uvarint(m.epoch); w.uvarint(m.events.length);
    for (const e of m.events) writeEvent(w, e);
  },
  [T.ControlRequest](w, m) { w.uvarint(m.user); w.uvarint(m.epoch); },
  [T.ControlGrant](w, m) { w.uvarint(m.by); w.uvarint(m.to); w.uvarint(m.epoch); },
  [T.ControlRevoke](w, m) { w.uvarint(m.by); w.uvarint(m.from); w.uvarint(m.epoch); },
  [T.ControlRelease](w, m) { w.uvarint(m.user); w.uvarint(m.epoch); },
  [T.ModeSwitch](w, m) { w.u8(m.kind); w.u8(m.mode); w.str(m.reason ?? ""); },
  [T.Ping](w, m) { w.uvarint(m.seq); w.uvarint(m.sent); },
  [T.Pong](w, m) { w.uvarint(m.seq); w.uvarint(m.echo); w.uvarint(m.sent); },
  [T.Lag](w, m) { w.uvarint(m.replayTick); w.uvarint(m.receivedTick); w.uvarint(m.bufferBytes); },
};

// encode writes a message the page sends ({type, ...fields}) and checks it
// with decode, so the page never sends what a peer would refuse.
export function encode(m) {
  const enc = encoders[m.type];
  if (!enc) throw new Error(`wire: the page does not send ${typeName[m.type] || m.type}`);
  const w = new Writer();
  w.u8(m.type);
  enc(w, m);
  const b = w.done();
  decode(b);
  return b;
}
