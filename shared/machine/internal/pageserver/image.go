//go:build linux

package pageserver

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"replaydesk/shared/machine/internal/uffd"
)

// PageSize is the granularity of images and faults.
const PageSize = uffd.PageSize

var zeroPage [PageSize]byte

// Image is the content a Server restores: one page per region page, held
// in a sparse memfd at offset page*PageSize. Zero pages are holes, which
// cost no memory and which the child finds with SEEK_DATA/SEEK_HOLE, so the
// file needs no index. The child reads it through its own descriptor: the
// parent's goroutines are never asked for a page.
type Image struct {
	f     *os.File
	pages int
	data  []bool // pages holding non-zero content
}

// NewImage creates an all-zero image of pages pages.
func NewImage(pages int) (*Image, error) {
	if pages <= 0 {
		return nil, fmt.Errorf("pageserver: image of %d pages", pages)
	}
	fd, err := unix.MemfdCreate("replaydesk-pages", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("pageserver: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "replaydesk-pages")
	if err := f.Truncate(int64(pages) * PageSize); err != nil {
		f.Close()
		return nil, fmt.Errorf("pageserver: sizing image: %w", err)
	}
	return &Image{f: f, pages: pages, data: make([]bool, pages)}, nil
}

// ImageOf returns an image of mem (a whole number of pages).
func ImageOf(mem []byte) (*Image, error) {
	if len(mem)%PageSize != 0 {
		return nil, fmt.Errorf("pageserver: image of %d bytes is not a whole number of pages", len(mem))
	}
	im, err := NewImage(len(mem) / PageSize)
	if err != nil {
		return nil, err
	}
	for p := range im.pages {
		if err := im.WritePage(p, mem[p*PageSize:(p+1)*PageSize]); err != nil {
			im.Close()
			return nil, err
		}
	}
	return im, nil
}

// WritePage sets the content of one page. All-zero pages are stored as
// holes.
func (im *Image) WritePage(page int, data []byte) error {
	if page < 0 || page >= im.pages || len(data) != PageSize {
		return fmt.Errorf("pageserver: page %d (%d bytes) outside an image of %d pages", page, len(data), im.pages)
	}
	off := int64(page) * PageSize
	if bytes.Equal(data, zeroPage[:]) {
		if im.data[page] {
			if err := unix.Fallocate(int(im.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, PageSize); err != nil {
				return fmt.Errorf("pageserver: zeroing page %d: %w", page, err)
			}
			im.data[page] = false
		}
		return nil
	}
	if _, err := im.f.WriteAt(data, off); err != nil {
		return fmt.Errorf("pageserver: writing page %d: %w", page, err)
	}
	im.data[page] = true
	return nil
}

// Pages returns the number of pages in the image.
func (im *Image) Pages() int { return im.pages }

// DataPages returns the number of non-zero pages.
func (im *Image) DataPages() int {
	n := 0
	for _, d := range im.data {
		if d {
			n++
		}
	}
	return n
}

// Close releases the parent's copy. A running Server keeps its own.
func (im *Image) Close() error { return im.f.Close() }
