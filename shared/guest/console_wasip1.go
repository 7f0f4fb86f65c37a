//go:build wasip1

package guest

import (
	"fmt"
	"io"
	"runtime"
	"unsafe"
)

// Console writes text to the session's console (its operator's log). Console
// output is not recorded: replayers produce it again themselves.
var Console io.Writer = console{}

type console struct{}

func (console) Write(b []byte) (int, error) {
	const max = 64 << 10
	for off := 0; off < len(b); off += max {
		chunk := b[off:min(len(b), off+max)]
		hostConsoleWrite(unsafe.Pointer(&chunk[0]), int32(len(chunk)))
		runtime.KeepAlive(chunk)
	}
	return len(b), nil
}

// Printf formats to Console like fmt.Printf.
func Printf(format string, args ...any) {
	fmt.Fprintf(Console, format, args...)
}
