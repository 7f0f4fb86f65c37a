package display

import "testing"

func benchEncode(b *testing.B, content func(w, h int, seed uint64) []byte, lossless bool) {
	w, h := 1280, 720
	fb := content(w, h, 1)
	enc := NewEncoder(Options{Lossless: lossless})
	var bytes int
	b.ResetTimer()
	for b.Loop() {
		bytes = 0
		for _, t := range enc.Key(fb, w, h, w*4) {
			bytes += len(t.Data)
		}
	}
	b.ReportMetric(float64(bytes), "bytes/frame")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/frame")
}

func BenchmarkEncodeDeskLossy(b *testing.B)     { benchEncode(b, desk, false) }
func BenchmarkEncodeDeskLossless(b *testing.B)  { benchEncode(b, desk, true) }
func BenchmarkEncodePhotoLossy(b *testing.B)    { benchEncode(b, photo, false) }
func BenchmarkEncodePhotoLossless(b *testing.B) { benchEncode(b, photo, true) }
