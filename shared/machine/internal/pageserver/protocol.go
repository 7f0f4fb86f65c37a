//go:build linux

package pageserver

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"
)

// EnvVar marks a process as a page-server child (see MaybeRunChild).
const EnvVar = "REPLAYDESK_PAGESERVER"

// Descriptors the child inherits (exec.Cmd.ExtraFiles start at 3).
const (
	childUffd   = 3 // the userfaultfd, registered on the parent's region
	childImage  = 4 // the Image memfd
	childCtl    = 5 // parent -> child: config, then one-byte commands; EOF = stop
	childReport = 6 // child -> parent: length-prefixed JSON reports
	// The parent's /proc/self/pagemap, to tell whether a page is present
	// (see serveFault), if childConfig.Pagemap.
	childPagemap = 7
)

// Commands on the control pipe after the config.
const (
	cmdStats    = 'S' // report Stats now
	cmdComplete = 'C' // fill every remaining page, report "done", exit
)

type childConfig struct {
	Base      uint64
	Pages     int
	Readahead int
	Prefetch  []int
	Pagemap   bool          // childPagemap is open
	Remote    *remoteConfig `json:",omitempty"` // nil: pages come from the image memfd
}

// remoteConfig is Remote as the child receives it.
type remoteConfig struct {
	BaseURL    string
	Token      string
	CacheDir   string
	CacheBytes int64
	Indices    []uint32 // non-zero pages, ascending
	Hashes     []byte   // 32 bytes per index, same order
	Timeout    time.Duration
}

type report struct {
	Kind  string // "ready", "stats", "done", "error"
	Stats Stats  `json:",omitzero"`
	Err   string `json:",omitempty"`
}

// Stats describe a page server's work. Service times run from reading a
// fault message to the UFFDIO_COPY/ZEROPAGE that wakes the faulting thread;
// the thread's full round trip adds the fault and wake-up (~2 context
// switches; see the package tests for figures).
type Stats struct {
	Pages             int // pages in the region
	DataPages         int // non-zero pages in the image
	Faults            int // fault messages handled
	WriteFaults       int
	ServedByFault     int // pages filled because they faulted
	ServedByReadahead int
	ServedByPrefetch  int
	ServedByComplete  int
	ZeroFilled        int // of all served, how many were zero pages
	// Fault messages for a page present already: read in the same batch as
	// another message the fill of that page answered (see serveFault), or
	// racing a read-ahead fill. They are answered with a wake-up, and their
	// page is not taken from the source again.
	AlreadyPresent int
	// Remote restores only: pages fetched from the page service (verified),
	// of which while completing, pages read from the disk cache, and HTTP
	// requests made.
	Fetched           int
	FetchedByComplete int
	FromCache         int
	FetchRequests     int
	ServiceP50        time.Duration
	ServiceP99        time.Duration
	ServiceMax        time.Duration
}

// Served returns the distinct pages the server filled.
func (s Stats) Served() int {
	return s.ServedByFault + s.ServedByReadahead + s.ServedByPrefetch + s.ServedByComplete
}

func (s Stats) String() string {
	str := fmt.Sprintf("%d faults (%d writes); served %d of %d pages (%d data in image): %d on fault, %d read-ahead, %d prefetch, %d complete; %d zero; service p50 %v p99 %v max %v",
		s.Faults, s.WriteFaults, s.Served(), s.Pages, s.DataPages, s.ServedByFault, s.ServedByReadahead, s.ServedByPrefetch, s.ServedByComplete,
		s.ZeroFilled, s.ServiceP50, s.ServiceP99, s.ServiceMax)
	if s.Fetched+s.FromCache > 0 {
		str += fmt.Sprintf("; fetched %d pages (%d to complete) in %d requests, %d from the disk cache", s.Fetched, s.FetchedByComplete, s.FetchRequests, s.FromCache)
	}
	return str
}

// percentiles fills the service-time fields from samples (nanoseconds).
func (s *Stats) percentiles(samples []uint32) {
	if len(samples) == 0 {
		return
	}
	v := slices.Clone(samples)
	slices.Sort(v)
	s.ServiceP50 = time.Duration(v[len(v)/2])
	s.ServiceP99 = time.Duration(v[min(len(v)-1, len(v)*99/100)])
	s.ServiceMax = time.Duration(v[len(v)-1])
}

const maxMessage = 64 << 20

func writeMessage(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 4+len(b))
	binary.LittleEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

func readMessage(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > maxMessage {
		return fmt.Errorf("pageserver: message of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
