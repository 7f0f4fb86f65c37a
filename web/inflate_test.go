package web

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestInflateJS: inflate.js decodes what Go's compress/zlib writes at every
// kind of block (stored, fixed and dynamic Huffman, Huffman-only) and
// refuses a wrong checksum, a short or long stream, and trailing bytes.
func TestInflateJS(t *testing.T) {
	modulesPage(t)
	rng := rand.New(rand.NewPCG(3, 4))
	payloads := [][]byte{
		{},
		{42},
		bytes.Repeat([]byte("abc"), 2000),
		desktop(5),
	}
	noise := make([]byte, 70000) // more than one stored block (65535)
	for i := range noise {
		noise[i] = byte(rng.IntN(256))
	}
	payloads = append(payloads, noise)
	type tc struct {
		Z    string
		N    int
		Want string // base64 of the payload
		Bad  bool   // must be refused
	}
	var cases []tc
	for _, p := range payloads {
		for _, level := range []int{zlib.NoCompression, zlib.BestSpeed, zlib.DefaultCompression, zlib.BestCompression, zlib.HuffmanOnly} {
			var b bytes.Buffer
			w, _ := zlib.NewWriterLevel(&b, level)
			w.Write(p)
			w.Close()
			z := b.Bytes()
			want := base64.StdEncoding.EncodeToString(p)
			cases = append(cases, tc{base64.StdEncoding.EncodeToString(z), len(p), want, false})
			if level != zlib.DefaultCompression {
				continue
			}
			bad := append([]byte(nil), z...)
			bad[len(bad)-1] ^= 1 // checksum
			cases = append(cases,
				tc{base64.StdEncoding.EncodeToString(bad), len(p), "", true},
				tc{base64.StdEncoding.EncodeToString(z), len(p) + 1, "", true},
				tc{base64.StdEncoding.EncodeToString(append(append([]byte(nil), z...), 0)), len(p), "", true},
				tc{base64.StdEncoding.EncodeToString(z[:len(z)-5]), len(p), "", true})
			if len(p) > 0 {
				cases = append(cases, tc{base64.StdEncoding.EncodeToString(z), len(p) - 1, "", true})
			}
		}
	}
	arg, _ := json.Marshal(cases)
	type res struct {
		OK       bool
		Out, Err string
	}
	got := eval[[]res](t, `(async () => {
		const {inflateSync} = await import("/web/inflate.js");
		const unb64 = s => Uint8Array.from(atob(s), c => c.charCodeAt(0));
		const b64 = b => { let s = ""; for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000)); return btoa(s); };
		return `+string(arg)+`.map(c => {
			try { return {OK: true, Out: b64(inflateSync(unb64(c.Z), c.N))}; } catch (e) { return {OK: false, Err: String(e)}; }
		});
	})()`)
	for i, c := range cases {
		switch r := got[i]; {
		case c.Bad && r.OK:
			t.Errorf("case %d (n %d): a broken stream was accepted", i, c.N)
		case !c.Bad && !r.OK:
			t.Errorf("case %d (n %d): refused: %s", i, c.N, r.Err)
		case !c.Bad && r.Out != c.Want:
			t.Errorf("case %d (n %d): wrong bytes", i, c.N)
		}
	}
}
