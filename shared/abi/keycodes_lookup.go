package abi

import "strconv"

var keyByName = func() map[string]KeyCode {
	m := make(map[string]KeyCode, len(keyNames))
	for c, n := range keyNames {
		m[n] = c
	}
	return m
}()

// KeyCodeByName maps a W3C KeyboardEvent.code name ("KeyA", "ArrowLeft") to
// its code.
func KeyCodeByName(name string) (KeyCode, bool) {
	c, ok := keyByName[name]
	return c, ok
}

// String returns the W3C name, or "Key(0x..)" for a code with no name.
func (c KeyCode) String() string {
	if n, ok := keyNames[c]; ok {
		return n
	}
	return "Key(0x" + strconv.FormatUint(uint64(c), 16) + ")"
}
