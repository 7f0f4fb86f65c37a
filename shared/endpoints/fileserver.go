package endpoints

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"replaydesk/shared/machine"
)

// File is one file a FileServer serves. Open returns a fresh reader of
// exactly Size bytes; it is called once per request, so content can be
// generated lazily as the guest reads it instead of being held in memory.
type File struct {
	Size int64
	Open func() io.Reader
}

// ChaChaFile is a file of size bytes from a ChaCha8 generator with the given
// seed: deterministic, incompressible, and never held in memory.
func ChaChaFile(seed [32]byte, size int64) File {
	return File{Size: size, Open: func() io.Reader {
		return io.LimitReader(rand.NewChaCha8(seed), size)
	}}
}

// MaxRequestLine bounds a FileServer request line.
const MaxRequestLine = 1024

// FileServer is a stream that serves files by name with a one-request
// protocol. The guest sends one line
//
//	GET <name>\n
//
// and the server answers with "SIZE <n>\n" followed by exactly n bytes of the
// file, or with "ERR <reason>\n"; then it closes the stream (Recv returns
// io.EOF once everything has been read). Bytes are ready as soon as they are
// asked for, so the guest's reading pace is the link's speed.
type FileServer struct {
	files  map[string]File
	req    []byte    // the request line so far
	out    []byte    // header bytes not yet read
	body   io.Reader // the file's remaining bytes, nil before or after
	left   int64     // bytes of body still to deliver
	done   bool      // the answer is complete: EOF after out and body
	closed bool
}

// NewFileServer returns a stream serving files (which it does not copy or
// modify).
func NewFileServer(files map[string]File) *FileServer {
	return &FileServer{files: files}
}

// FileServerFactory returns a Factory whose streams each serve files.
func FileServerFactory(files map[string]File) Factory {
	return func() (machine.Stream, error) { return NewFileServer(files), nil }
}

// Send takes request bytes. Bytes after the request line are ignored; a line
// longer than MaxRequestLine is refused with an ERR answer.
func (f *FileServer) Send(p []byte) (int, error) {
	if f.closed {
		return 0, io.ErrClosedPipe
	}
	if f.done || f.body != nil {
		return len(p), nil // one request per stream; the rest is ignored
	}
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		f.req = append(f.req, p...)
		if len(f.req) > MaxRequestLine {
			f.answerErr("request line too long")
		}
		return len(p), nil
	}
	f.req = append(f.req, p[:i]...)
	f.answer(string(f.req))
	return len(p), nil
}

func (f *FileServer) answer(line string) {
	name, ok := strings.CutPrefix(line, "GET ")
	if !ok {
		f.answerErr("bad request")
		return
	}
	file, ok := f.files[name]
	if !ok {
		f.answerErr("no such file")
		return
	}
	f.out = []byte("SIZE " + strconv.FormatInt(file.Size, 10) + "\n")
	f.body, f.left = file.Open(), file.Size
	f.done = true
}

func (f *FileServer) answerErr(reason string) {
	f.out = []byte("ERR " + reason + "\n")
	f.done = true
}

// Recv copies the answer's next bytes into p; (0, nil) before a request
// line has arrived, io.EOF once the whole answer has been read.
func (f *FileServer) Recv(p []byte) (int, error) {
	if f.closed {
		return 0, io.EOF
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	if n < len(p) && f.body != nil && f.left > 0 {
		m, err := io.ReadFull(f.body, p[n:n+int(min(int64(len(p)-n), f.left))])
		f.left -= int64(m)
		n += m
		if err != nil && f.left > 0 {
			return n, fmt.Errorf("endpoints: file source ended %d bytes early: %w", f.left, err)
		}
	}
	if n == 0 && f.done && f.left == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Pending reports whether answer bytes (or its end) are waiting.
func (f *FileServer) Pending() bool { return !f.closed && f.done }

// Close ends the stream.
func (f *FileServer) Close() error { f.closed = true; f.body = nil; return nil }
