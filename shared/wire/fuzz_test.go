package wire

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode: arbitrary bytes never panic, never allocate far beyond their
// own size (every count is checked against the bytes left), and whatever
// decodes encodes back to exactly the same bytes and decodes to the same
// message.
func FuzzDecode(f *testing.F) {
	for _, m := range samples() {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Add([]byte{1, 2})
	f.Add([]byte{15, 0, 0, 1, 10, 10, 0x81, 0x20})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if m != nil {
				t.Fatal("message and error")
			}
			return
		}
		b2, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", m, err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("not canonical:\n in % x\nout % x", b, b2)
		}
		m2, err := Decode(b2)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("decode(encode(m)) = %+v, %v; want %+v", m2, err, m)
		}
	})
}
