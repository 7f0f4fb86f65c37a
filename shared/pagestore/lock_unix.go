//go:build unix

package pagestore

import (
	"os"
	"path/filepath"
	"syscall"
)

// lock takes ROOT/gc.lock with flock(2): it excludes other processes on the
// same store and, since every call opens the file anew, other goroutines
// of this one too.
func (s *DirStore) lock(exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.Root, "gc.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing the descriptor releases the lock
}
