package endpoints

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestBytes(t *testing.T) {
	data := []byte("hello, video")
	s, err := BytesFactory(data)()
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pending() {
		t.Fatal("a fresh stream has nothing pending")
	}
	if n, err := s.Send([]byte("GET")); n != 3 || err != nil {
		t.Fatalf("Send = %d, %v", n, err)
	}
	var got []byte
	buf := make([]byte, 5)
	for {
		n, err := s.Recv(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || n == 0 {
			t.Fatalf("Recv = %d, %v", n, err)
		}
		if !s.Pending() {
			t.Fatal("not pending before the end was read")
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %q", got)
	}
	if s.Pending() {
		t.Fatal("pending after EOF")
	}
	// Each stream starts from the beginning; the data is not modified.
	s2, _ := BytesFactory(data)()
	if n, _ := s2.Recv(buf); string(buf[:n]) != "hello" {
		t.Fatalf("second stream starts with %q", buf[:n])
	}
	s2.Close()
	if _, err := s2.Recv(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("Recv after Close: %v", err)
	}
	if _, err := s2.Send(buf); err == nil {
		t.Fatal("Send after Close succeeded")
	}
	if s2.Pending() {
		t.Fatal("pending after Close")
	}
}
