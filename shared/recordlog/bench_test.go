package recordlog

import (
	"context"
	"io"
	"math/rand/v2"
	"testing"
)

// benchRecords is a mix like a busy machine's: steps, idles, calls with
// small outcomes, now and then a few KiB (a disk block, a network chunk).
func benchRecords(n int) []Record {
	g := &gen{rng: rand.New(rand.NewPCG(11, 11))}
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = g.record()
	}
	return recs
}

func BenchmarkAppendFlush(b *testing.B) {
	recs := benchRecords(4096)
	w, err := Create(b.TempDir(), Header{ModuleHash: testHash(8)}, WriterOptions{})
	mustNil(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.Append(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	mustNil(b, w.Close())
	b.StopTimer()
	b.SetBytes(w.Bytes() / int64(b.N)) // log bytes per record
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	recs := benchRecords(50000)
	w, err := Create(dir, Header{ModuleHash: testHash(8)}, WriterOptions{SegmentBytes: 16 << 20})
	mustNil(b, err)
	for i, r := range recs {
		mustNil(b, w.Append(r))
		if i%64 == 63 {
			mustNil(b, w.Flush())
		}
	}
	mustNil(b, w.Close())
	b.SetBytes(w.Bytes()) // one op reads the whole log
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := Open(dir, testHash(8), ReaderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := r.Next(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		r.Close()
		if n != len(recs) {
			b.Fatalf("read %d records", n)
		}
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
