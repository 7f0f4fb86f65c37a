//go:build !unix

package pagestore

import "sync"

// gcLock stands in for flock where there is none: it excludes goroutines
// of this process only.
var gcLock sync.RWMutex

func (s *DirStore) lock(exclusive bool) (func(), error) {
	if exclusive {
		gcLock.Lock()
		return gcLock.Unlock, nil
	}
	gcLock.RLock()
	return gcLock.RUnlock, nil
}
