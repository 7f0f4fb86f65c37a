//go:build wasip1

package guest

import (
	"image"
	"io"
	"time"

	"replaydesk/shared/abi"
)

// Host offers the SDK's calls as methods. An image whose logic takes a host
// interface — so that its tests can pass a fake one natively — embeds Host in
// its adapter instead of writing the same forwarding methods again. (No
// Random here: an image that wants one adds it, so the others do not link
// crypto/rand.)
type Host struct{}

func (Host) Now() time.Time                          { return time.Now() }
func (Host) PollInput(dst []abi.Event) []abi.Event   { return PollInput(dst) }
func (Host) DiskInfo() (uint64, abi.DiskMode, error) { return DiskInfo() }
func (Host) ReadBlock(n uint64, buf []byte) error    { return ReadBlock(n, buf) }
func (Host) WriteBlock(n uint64, buf []byte) error   { return WriteBlock(n, buf) }
func (Host) Console() io.Writer                      { return Console }
func (Host) Present(img *image.RGBA, damage []image.Rectangle) {
	PresentRGBA(img, damage...)
}
