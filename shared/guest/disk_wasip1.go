//go:build wasip1

package guest

import (
	"encoding/binary"
	"math"
	"runtime"
	"unsafe"

	"replaydesk/shared/abi"
)

var diskInfoBuf [abi.DiskInfoSize]byte

// DiskInfo reports the session's disk: its size in abi.BlockSize blocks and
// how it reaches replayers. Without a disk it returns ErrNodev.
func DiskInfo() (blocks uint64, mode abi.DiskMode, err error) {
	r := hostDiskInfo(unsafe.Pointer(&diskInfoBuf[0]))
	runtime.KeepAlive(&diskInfoBuf)
	if err := errnoErr(r); err != nil {
		return 0, abi.DiskNone, err
	}
	blocks = binary.LittleEndian.Uint64(diskInfoBuf[0:])
	size := binary.LittleEndian.Uint32(diskInfoBuf[8:])
	mode = abi.DiskMode(binary.LittleEndian.Uint32(diskInfoBuf[12:]))
	if size != abi.BlockSize {
		return 0, abi.DiskNone, ErrInval // not ABI v1's block size
	}
	return blocks, mode, nil
}

// ReadBlock reads block n into buf[:abi.BlockSize]. buf must hold at least
// abi.BlockSize bytes (ErrInval otherwise).
func ReadBlock(n uint64, buf []byte) error {
	if len(buf) < abi.BlockSize || n > math.MaxInt64 {
		return ErrInval
	}
	r := hostDiskRead(int64(n), unsafe.Pointer(&buf[0]))
	runtime.KeepAlive(buf)
	return errnoErr(r)
}

// WriteBlock writes buf[:abi.BlockSize] to block n. buf must hold at least
// abi.BlockSize bytes (ErrInval otherwise).
func WriteBlock(n uint64, buf []byte) error {
	if len(buf) < abi.BlockSize || n > math.MaxInt64 {
		return ErrInval
	}
	r := hostDiskWrite(int64(n), unsafe.Pointer(&buf[0]))
	runtime.KeepAlive(buf)
	return errnoErr(r)
}
