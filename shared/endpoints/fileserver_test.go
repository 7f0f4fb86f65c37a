package endpoints

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFileServer(t *testing.T) {
	seed := [32]byte{9}
	const size = 300_000
	files := map[string]File{"big.bin": ChaChaFile(seed, size)}
	want := make([]byte, size)
	rand.NewChaCha8(seed).Read(want)

	h := NewHost()
	h.Add("files", FileServerFactory(files))
	s, err := h.Open("files")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 70_000)
	if n, err := s.Recv(buf); n != 0 || err != nil || s.Pending() {
		t.Fatalf("before a request: %d %v pending=%v", n, err, s.Pending())
	}
	// The request arrives in two pieces.
	s.Send([]byte("GET big"))
	if s.Pending() {
		t.Fatal("pending after half a request")
	}
	s.Send([]byte(".bin\n"))
	if !s.Pending() {
		t.Fatal("not pending after the request")
	}
	// Read with irregular sizes.
	var got []byte
	r := rand.New(rand.NewPCG(1, 2))
	for {
		n, err := s.Recv(buf[:1+r.IntN(len(buf))])
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("no progress before EOF")
		}
	}
	hdr, body, ok := bytes.Cut(got, []byte("\n"))
	if !ok || string(hdr) != "SIZE 300000" {
		t.Fatalf("header %q", hdr)
	}
	if sha256.Sum256(body) != sha256.Sum256(want) {
		t.Fatalf("body differs (%d bytes, want %d)", len(body), len(want))
	}
	// A second stream serves the same bytes from the start.
	s2, _ := h.Open("files")
	s2.Send([]byte("GET big.bin\n"))
	n, _ := s2.Recv(buf[:100])
	if !bytes.Equal(buf[len("SIZE 300000\n"):n], want[:n-len("SIZE 300000\n")]) {
		t.Fatal("a second stream does not start at the file's beginning")
	}
	s2.Close()
	if _, err := s2.Recv(buf); err != io.EOF {
		t.Fatalf("after close: %v", err)
	}
}

func TestFileServerErrors(t *testing.T) {
	files := map[string]File{"a": ChaChaFile([32]byte{}, 10)}
	for _, tc := range []struct{ req, want string }{
		{"GET nope\n", "ERR no such file\n"},
		{"PUT a\n", "ERR bad request\n"},
		{"GET " + strings.Repeat("x", MaxRequestLine), "ERR request line too long\n"},
	} {
		s := NewFileServer(files)
		s.Send([]byte(tc.req))
		got, err := io.ReadAll(readerOf{s})
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.req, got, err, tc.want)
		}
	}
}

// readerOf adapts a stream whose answer is complete to io.Reader.
type readerOf struct{ s *FileServer }

func (r readerOf) Read(p []byte) (int, error) { return r.s.Recv(p) }
