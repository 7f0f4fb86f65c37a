// display.js: paints DisplayFrames (docs/wire-protocol.md, type 15) on a
// canvas. The tile layouts are those of shared/display (encoder.go,
// decoder.go): raw and solid RGBA, zlib of raw RGBA, palette (n-1, n RGBA
// colours, zlib of MSB-first indices at 1/2/4 bits, rows padded to a byte),
// JPEG and PNG files (zlib is inflate.js's). It keeps its own RGBA framebuffer, the exact pixels,
// and copies the painted tiles to the canvas. It knows nothing of sockets.

import { Enc } from "./wire.js";
import { inflateSync } from "./inflate.js";

export class TileError extends Error {
  constructor(i, t, reason) {
    super(`display: tile ${i} (${t.x},${t.y} ${t.w}x${t.h} enc ${t.encoding}): ${reason}`);
    this.name = "TileError";
  }
}

// decodeImage turns a JPEG or PNG file into w*h RGBA bytes, unpremultiplied
// and without colour management, so PNG stays exact.
async function decodeImage(data, type, w, h) {
  let bmp;
  try {
    bmp = await createImageBitmap(new Blob([data], { type }), { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  } catch (e) {
    throw new Error(`${type}: ${e.message || "cannot decode"}`);
  }
  try {
    if (bmp.width !== w || bmp.height !== h) throw new Error(`image is ${bmp.width}x${bmp.height}, tile is ${w}x${h}`);
    const oc = new OffscreenCanvas(w, h);
    const ctx = oc.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0);
    return ctx.getImageData(0, 0, w, h).data;
  } finally {
    bmp.close();
  }
}

// prepare turns one tile into w*h*4 RGBA bytes (or a solid colour), decoding
// asynchronously where the browser must.
async function prepare(t) {
  const n = t.w * t.h * 4;
  switch (t.encoding) {
    case Enc.raw:
      if (t.data.length !== n) throw new Error(`raw needs ${n} bytes, has ${t.data.length}`);
      return t.data;
    case Enc.solid:
      if (t.data.length !== 4) throw new Error(`solid needs 4 bytes, has ${t.data.length}`);
      return null;
    case Enc.zlib:
      return inflateSync(t.data, n);
    case Enc.palette: {
      const d = t.data;
      if (d.length < 1) throw new Error("empty palette tile");
      const k = d[0] + 1;
      if (k < 2 || k > 16 || d.length < 1 + 4 * k) throw new Error(`palette of ${k} colours in ${d.length} bytes`);
      const bits = k <= 2 ? 1 : k <= 4 ? 2 : 4;
      const rowBytes = (t.w * bits + 7) >> 3;
      const idx = inflateSync(d.subarray(1 + 4 * k), rowBytes * t.h);
      const pal = d.subarray(1, 1 + 4 * k), mask = (1 << bits) - 1;
      const out = new Uint8Array(n);
      for (let j = 0; j < t.h; j++) {
        const src = j * rowBytes;
        for (let i = 0; i < t.w; i++) {
          const bit = i * bits;
          const c = (idx[src + (bit >> 3)] >> (8 - bits - (bit & 7))) & mask;
          if (c >= k) throw new Error(`palette index ${c} of ${k} colours`);
          const o = (j * t.w + i) * 4, q = c * 4;
          out[o] = pal[q]; out[o + 1] = pal[q + 1]; out[o + 2] = pal[q + 2]; out[o + 3] = pal[q + 3];
        }
      }
      return out;
    }
    case Enc.jpeg: {
      const px = await decodeImage(t.data, "image/jpeg", t.w, t.h);
      for (let i = 3; i < px.length; i += 4) px[i] = 255; // JPEG has no alpha
      return px;
    }
    case Enc.png:
      return decodeImage(t.data, "image/png", t.w, t.h);
    default:
      throw new Error(`unknown encoding ${t.encoding}`);
  }
}

export class Screen {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.fb = null; // ImageData: the exact pixels
    this.queue = Promise.resolve();
    this.frames = 0; // frames painted
    this.pushed = 0; // frames queued, ever
    this.lastKey = 0; // the newest key frame's number in that count
    this.onError = () => { };
    this.onFrame = () => { };
  }

  get width() { return this.fb ? this.fb.width : 0; }
  get height() { return this.fb ? this.fb.height : 0; }

  // reset forgets the screen: the next frame painted must be a key frame
  // (a reconnecting or late-joining viewer starts at one).
  reset() { this.fb = null; }

  // push queues a frame; frames paint strictly in arrival order even though
  // their tiles decode asynchronously.
  // A key frame repaints everything, so frames queued before it are skipped
  // unpainted: a page that falls behind catches up at the next key frame.
  push(f) {
    const n = ++this.pushed;
    if (f.key) this.lastKey = n;
    this.queue = this.queue.then(() => n < this.lastKey ? false : this.apply(f)).catch(e => this.onError(e));
    return this.queue;
  }

  async apply(f) {
    if (!f.key && (!this.fb || this.fb.width !== f.width || this.fb.height !== f.height)) return false; // wait for a key frame
    // All tiles decode at once; they are painted in order below.
    const prepared = f.tiles.map((t, i) => prepare(t).catch(e => { throw new TileError(i, t, e.message); }));
    const results = await Promise.allSettled(prepared);
    if (!f.key && (!this.fb || this.fb.width !== f.width || this.fb.height !== f.height)) return false; // reset meanwhile
    if (f.key && (!this.fb || this.fb.width !== f.width || this.fb.height !== f.height)) {
      this.fb = new ImageData(f.width, f.height);
      this.canvas.width = f.width;
      this.canvas.height = f.height;
    }
    const fb = this.fb.data, stride = f.width * 4;
    let err = null;
    for (let i = 0; i < f.tiles.length; i++) {
      const t = f.tiles[i], r = results[i];
      if (r.status === "rejected") { err = r.reason; break; } // tiles before it stay painted
      const rowLen = t.w * 4;
      if (r.value === null) { // solid
        const c = t.data;
        for (let j = 0; j < t.h; j++) {
          let o = (t.y + j) * stride + t.x * 4;
          for (let i2 = 0; i2 < t.w; i2++, o += 4) { fb[o] = c[0]; fb[o + 1] = c[1]; fb[o + 2] = c[2]; fb[o + 3] = c[3]; }
        }
      } else {
        for (let j = 0; j < t.h; j++) fb.set(r.value.subarray(j * rowLen, (j + 1) * rowLen), (t.y + j) * stride + t.x * 4);
      }
      this.ctx.putImageData(this.fb, 0, 0, t.x, t.y, t.w, t.h);
    }
    this.frames++;
    this.onFrame(f);
    if (err) throw err;
    return true;
  }

  // pixels returns a copy of the framebuffer (for tests and screenshots).
  pixels() { return this.fb ? new Uint8Array(this.fb.data) : new Uint8Array(0); }
}
