package recordlog

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/rs/zerolog"
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

// BenchmarkResumeTornLargeBlock is the worst case of telling a torn tail
// from a damaged length: the last block, of nearly 8 MiB of incompressible
// data, torn one byte short, so every shorter length is tried.
func BenchmarkResumeTornLargeBlock(b *testing.B) {
	src := b.TempDir()
	w, err := Create(src, Header{ModuleHash: testHash(8)}, WriterOptions{})
	mustNil(b, err)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := 0; i < 7; i++ {
		d := make([]byte, MaxData)
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		mustNil(b, w.Append(Record{Kind: KindCall, Fn: 1, Data: d}))
	}
	mustNil(b, w.Detach())
	path := segFiles(b, src)[0]
	full, err := os.ReadFile(path)
	mustNil(b, err)
	nop := zerolog.Nop()
	b.SetBytes(int64(len(full)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		mustNil(b, os.WriteFile(path, full[:len(full)-1], 0o666))
		b.StartTimer()
		w, err := Resume(src, testHash(8), WriterOptions{Log: &nop})
		mustNil(b, err)
		w.Detach()
	}
}
