// inflate.js: a small synchronous zlib (RFC 1950) and DEFLATE (RFC 1951)
// decoder for display tiles. DecompressionStream costs about a millisecond of
// stream machinery per tile whatever its size; tiles are small, so decoding
// them here, at once, is many times faster. It refuses anything that is not
// exactly one well-formed zlib stream of the expected size with a correct
// checksum. Structured after zlib's puff.c.

const LBASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEXT = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DBASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DEXT = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const MAXBITS = 15;
const FAST = 9; // codes this long or shorter decode with one table look-up

class Huffman {
  constructor(n) {
    this.count = new Uint16Array(MAXBITS + 1);
    this.symbol = new Uint16Array(n);
    this.fast = new Int32Array(1 << FAST); // bit-reversed code -> symbol << 4 | length, 0 if longer
  }
  // build returns 0 for a complete code, > 0 for an incomplete one, < 0 for
  // an over-subscribed one.
  build(lengths, n) {
    const count = this.count;
    count.fill(0);
    for (let s = 0; s < n; s++) count[lengths[s]]++;
    if (count[0] === n) return 0; // no codes: complete but useless
    let left = 1;
    for (let len = 1; len <= MAXBITS; len++) {
      left = left * 2 - count[len];
      if (left < 0) return left;
    }
    const offs = new Uint16Array(MAXBITS + 1);
    for (let len = 1; len < MAXBITS; len++) offs[len + 1] = offs[len] + count[len];
    for (let s = 0; s < n; s++) if (lengths[s] !== 0) this.symbol[offs[lengths[s]]++] = s;
    // Canonical codes (RFC 1951 3.2.2), stored bit-reversed: DEFLATE packs
    // Huffman codes from their most significant bit into an LSB-first stream.
    const next = new Uint16Array(MAXBITS + 2);
    let code = 0;
    for (let len = 1; len <= MAXBITS; len++) { code = (code + (len > 1 ? count[len - 1] : 0)) << 1; next[len] = code; }
    this.fast.fill(0);
    for (let s = 0; s < n; s++) {
      const len = lengths[s];
      if (len === 0) continue;
      const c = next[len]++;
      if (len > FAST) continue;
      let r = 0;
      for (let i = 0; i < len; i++) r |= ((c >> i) & 1) << (len - 1 - i);
      for (let k = r; k < 1 << FAST; k += 1 << len) this.fast[k] = (s << 4) | len;
    }
    return left;
  }
}

function bad(msg) { return new Error(`zlib: ${msg}`); }

class Inflater {
  constructor(src, start, out) {
    this.src = src; this.pos = start; this.bitbuf = 0; this.bitcnt = 0;
    this.out = out; this.n = 0;
  }
  bits(need) {
    let val = this.bitbuf;
    while (this.bitcnt < need) {
      if (this.pos >= this.src.length) throw bad("truncated stream");
      val |= this.src[this.pos++] << this.bitcnt;
      this.bitcnt += 8;
    }
    this.bitbuf = val >>> need;
    this.bitcnt -= need;
    return val & ((1 << need) - 1);
  }
  decode(h) {
    // Look ahead up to FAST bits (fewer at the end of the input); pos is
    // wound back over whole unread bytes when the stream ends.
    while (this.bitcnt < FAST && this.pos < this.src.length) {
      this.bitbuf |= this.src[this.pos++] << this.bitcnt;
      this.bitcnt += 8;
    }
    const e = h.fast[this.bitbuf & ((1 << FAST) - 1)];
    if (e !== 0 && (e & 15) <= this.bitcnt) {
      this.bitbuf >>>= e & 15;
      this.bitcnt -= e & 15;
      return e >> 4;
    }
    let code = 0, first = 0, index = 0;
    for (let len = 1; len <= MAXBITS; len++) {
      code |= this.bits(1);
      const count = h.count[len];
      if (code - count < first) return h.symbol[index + (code - first)];
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    throw bad("invalid Huffman code");
  }
  put(b) {
    if (this.n >= this.out.length) throw bad(`more than ${this.out.length} bytes`);
    this.out[this.n++] = b;
  }
  // align drops the bits left of a partly read byte and gives back whole
  // bytes read ahead.
  align() {
    this.pos -= this.bitcnt >> 3;
    this.bitbuf = 0; this.bitcnt = 0;
  }
  stored() {
    this.align();
    const s = this.src;
    if (this.pos + 4 > s.length) throw bad("truncated stored block");
    const len = s[this.pos] | s[this.pos + 1] << 8, nlen = s[this.pos + 2] | s[this.pos + 3] << 8;
    this.pos += 4;
    if (len !== (~nlen & 0xffff)) throw bad("stored block length check");
    if (this.pos + len > s.length) throw bad("truncated stored block");
    if (this.n + len > this.out.length) throw bad(`more than ${this.out.length} bytes`);
    this.out.set(s.subarray(this.pos, this.pos + len), this.n);
    this.n += len;
    this.pos += len;
  }
  codes(lencode, distcode) {
    const out = this.out;
    for (; ;) {
      let sym = this.decode(lencode);
      if (sym < 256) { this.put(sym); continue; }
      if (sym === 256) return;
      sym -= 257;
      if (sym >= 29) throw bad("invalid length symbol");
      const len = LBASE[sym] + this.bits(LEXT[sym]);
      const ds = this.decode(distcode);
      if (ds >= 30) throw bad("invalid distance symbol");
      const dist = DBASE[ds] + this.bits(DEXT[ds]);
      if (dist > this.n) throw bad("distance too far back");
      if (this.n + len > out.length) throw bad(`more than ${out.length} bytes`);
      for (let i = 0; i < len; i++, this.n++) out[this.n] = out[this.n - dist];
    }
  }
  dynamic() {
    const nlen = this.bits(5) + 257, ndist = this.bits(5) + 1, ncode = this.bits(4) + 4;
    if (nlen > 286 || ndist > 30) throw bad("bad counts");
    const lengths = new Uint8Array(320);
    for (let i = 0; i < ncode; i++) lengths[ORDER[i]] = this.bits(3);
    const lencode = new Huffman(286), distcode = new Huffman(30);
    if (lencode.build(lengths, 19) !== 0) throw bad("incomplete code length code");
    lengths.fill(0);
    for (let i = 0; i < nlen + ndist;) {
      let sym = this.decode(lencode);
      if (sym < 16) { lengths[i++] = sym; continue; }
      let len = 0, rep;
      if (sym === 16) {
        if (i === 0) throw bad("repeat with no first length");
        len = lengths[i - 1];
        rep = 3 + this.bits(2);
      } else if (sym === 17) rep = 3 + this.bits(3);
      else rep = 11 + this.bits(7);
      if (i + rep > nlen + ndist) throw bad("too many lengths");
      while (rep--) lengths[i++] = len;
    }
    if (lengths[256] === 0) throw bad("no end-of-block code");
    let err = lencode.build(lengths, nlen);
    if (err < 0 || (err > 0 && nlen - lencode.count[0] !== 1)) throw bad("incomplete literal/length code");
    err = distcode.build(lengths.subarray(nlen), ndist);
    if (err < 0 || (err > 0 && ndist - distcode.count[0] !== 1)) throw bad("incomplete distance code");
    this.codes(lencode, distcode);
  }
}

let fixedLen = null, fixedDist = null;
function fixed() {
  if (!fixedLen) {
    const l = new Uint8Array(288);
    l.fill(8, 0, 144); l.fill(9, 144, 256); l.fill(7, 256, 280); l.fill(8, 280, 288);
    fixedLen = new Huffman(288); fixedLen.build(l, 288);
    fixedDist = new Huffman(30); fixedDist.build(new Uint8Array(30).fill(5), 30);
  }
  return [fixedLen, fixedDist];
}

function adler32(b) {
  let a = 1, s = 0;
  for (let i = 0; i < b.length;) {
    const end = Math.min(i + 3800, b.length);
    for (; i < end; i++) { a += b[i]; s += a; }
    a %= 65521; s %= 65521;
  }
  return ((s << 16) | a) >>> 0;
}

// inflateSync decodes a zlib stream that must hold exactly n bytes.
export function inflateSync(src, n) {
  if (src.length < 6) throw bad("truncated stream");
  const cmf = src[0], flg = src[1];
  if ((cmf & 15) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0) throw bad("invalid header");
  if (flg & 0x20) throw bad("preset dictionary");
  const out = new Uint8Array(n);
  const z = new Inflater(src, 2, out);
  let last;
  do {
    last = z.bits(1);
    const type = z.bits(2);
    if (type === 0) z.stored();
    else if (type === 1) z.codes(...fixed());
    else if (type === 2) z.dynamic();
    else throw bad("invalid block type");
  } while (!last);
  if (z.n !== n) throw bad(`${z.n} bytes, want ${n}`);
  z.align();
  const p = z.pos; // the checksum starts at the next whole byte
  if (p + 4 !== src.length) throw bad(p + 4 > src.length ? "truncated checksum" : `${src.length - p - 4} bytes after the stream`);
  const sum = ((src[p] << 24) | (src[p + 1] << 16) | (src[p + 2] << 8) | src[p + 3]) >>> 0;
  if (sum !== adler32(out)) throw bad("checksum mismatch");
  return out;
}
