package endpoints

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"testing"
	"time"
)

func TestEcho(t *testing.T) {
	h := NewHost()
	s, err := h.Open("echo")
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending() {
		t.Fatal("pending before anything was sent")
	}
	s.Send([]byte("hello"))
	buf := make([]byte, 3)
	if n, _ := s.Recv(buf); n != 3 || string(buf) != "hel" || !s.Pending() {
		t.Fatalf("%d %q", n, buf)
	}
	s.Close()
	if _, err := s.Recv(buf); err != io.EOF {
		t.Fatalf("after close: %v", err)
	}
	if _, err := h.Open("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unknown endpoint: %v", err)
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("from the LAN"))
		c.Close()
	}()
	h := NewHost()
	h.AddTCP("lan", ln.Addr().String())
	s, err := h.Open("lan")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []byte
	buf := make([]byte, 64)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n, err := s.Recv(buf) // never blocks
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if string(got) != "from the LAN" {
		t.Fatalf("got %q", got)
	}
}
