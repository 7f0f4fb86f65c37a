package inputscript

import (
	"strings"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	in := strings.Repeat(`{"t":1,"user":"alice","type":"key","code":"KeyA","down":true}`+"\n", 10000)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Parse(strings.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}
