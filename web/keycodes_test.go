package web

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"replaydesk/shared/abi"
)

var updateKeycodes = flag.Bool("update-keycodes", false, "rewrite static/keycodes.js from shared/abi")

// keycodesJS renders the JS table of KeyboardEvent.code names to USB HID
// usages from shared/abi, the one table the native client uses too.
func keycodesJS() []byte {
	var b bytes.Buffer
	b.WriteString("// Code generated from shared/abi/keycodes.go by `go test ./web -run TestKeycodesJS -update-keycodes`; DO NOT EDIT.\n")
	b.WriteString("// KeyboardEvent.code (W3C UI Events) -> USB HID usage, page 7.\n\n")
	b.WriteString("export const keyCodes = Object.freeze({\n")
	for c := range abi.KeyCode(1 << 16) {
		name := c.String()
		if strings.HasPrefix(name, "Key(0x") {
			continue // no name: not a key a browser reports
		}
		fmt.Fprintf(&b, "  %s: 0x%02X,\n", name, uint32(c))
	}
	b.WriteString("});\n")
	return b.Bytes()
}

func TestKeycodesJS(t *testing.T) {
	want := keycodesJS()
	if *updateKeycodes {
		if err := os.WriteFile("static/keycodes.js", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("static/keycodes.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("static/keycodes.js differs from shared/abi's key table; run go test ./web -run TestKeycodesJS -update-keycodes")
	}
	// Every name round-trips, so the table is the abi's and nothing else.
	n := 0
	for line := range strings.Lines(string(got)) {
		var name string
		var code uint32
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%s 0x%X,", &name, &code); err != nil {
			continue
		}
		name = strings.TrimSuffix(name, ":")
		c, ok := abi.KeyCodeByName(name)
		if !ok || uint32(c) != code {
			t.Errorf("%s: 0x%02X in keycodes.js, abi says %v (%v)", name, code, uint32(c), ok)
		}
		n++
	}
	if n < 100 {
		t.Fatalf("keycodes.js has %d keys; the abi table has over 100", n)
	}
}
