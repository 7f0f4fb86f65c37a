//go:build wasip1

// Probe is the machine's test guest: every step touches every device with
// raw ABI v1 imports and paints a 64x64 picture that depends on all of them.
// Keys steer it: S toggles sleeping 10 ticks a step, U sleeps until the next
// event, T makes a bad present (a guest error).
package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"hash/fnv"
	"time"
	"unsafe"
)

//go:wasmimport replaydesk_v1 present
func present(fb unsafe.Pointer, w, h, stride, format int32, rects unsafe.Pointer, n int32)

//go:wasmimport replaydesk_v1 input_poll
func inputPoll(buf unsafe.Pointer, max int32) int32

//go:wasmimport replaydesk_v1 disk_info
func diskInfo(out unsafe.Pointer) int32

//go:wasmimport replaydesk_v1 disk_read
func diskRead(block int64, buf unsafe.Pointer) int32

//go:wasmimport replaydesk_v1 disk_write
func diskWrite(block int64, buf unsafe.Pointer) int32

//go:wasmimport replaydesk_v1 net_open
func netOpen(name unsafe.Pointer, n int32) int32

//go:wasmimport replaydesk_v1 net_send
func netSend(h int32, buf unsafe.Pointer, n int32) int32

//go:wasmimport replaydesk_v1 net_recv
func netRecv(h int32, buf unsafe.Pointer, n int32) int32

//go:wasmimport replaydesk_v1 console_write
func consoleWrite(buf unsafe.Pointer, n int32)

const W, H = 64, 64

var (
	fb       [W * H * 4]byte
	evs      [16 * 32]byte
	block    [4096]byte
	info     [16]byte
	recvBuf  [256]byte
	rects    [4]int32
	state    = fnv.New64a()
	steps    int
	netH     int32 = -1
	sleeping bool
	until    bool
	blocks   int64
	start    = time.Now()
)

func mix(b []byte) { state.Write(b) }

func mixU64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	mix(b[:])
}

func say(s string) {
	b := []byte(s)
	consoleWrite(unsafe.Pointer(&b[0]), int32(len(b)))
}

//go:wasmexport step
func step() int32 {
	steps++
	until = false
	n := inputPoll(unsafe.Pointer(&evs[0]), 16)
	for i := int32(0); i < n; i++ {
		e := evs[i*32 : i*32+32]
		mix(e)
		if e[0] == 1 && e[1]&1 != 0 { // key down
			switch binary.LittleEndian.Uint32(e[4:]) {
			case 0x16: // KeyS
				sleeping = !sleeping
			case 0x18: // KeyU
				until = true
			case 0x17: // KeyT
				present(unsafe.Pointer(&fb[0]), 0, 0, 0, 0, nil, 0)
			}
		}
	}
	mixU64(uint64(time.Since(start)))
	if steps%7 == 1 {
		var r [8]byte
		crand.Read(r[:])
		mix(r[:])
	}
	if blocks == 0 && diskInfo(unsafe.Pointer(&info[0])) == 0 {
		blocks = int64(binary.LittleEndian.Uint64(info[:]))
	}
	if blocks > 0 {
		if diskRead(int64(steps)%blocks, unsafe.Pointer(&block[0])) == 0 {
			mix(block[:64])
		}
		binary.LittleEndian.PutUint64(block[:], uint64(steps))
		diskWrite(int64(steps*3)%blocks, unsafe.Pointer(&block[0]))
	}
	if netH < 0 {
		name := []byte("echo")
		netH = netOpen(unsafe.Pointer(&name[0]), int32(len(name)))
		mixU64(uint64(netH))
	}
	if netH >= 0 {
		msg := []byte{byte(steps), byte(steps >> 8), 'p'}
		netSend(netH, unsafe.Pointer(&msg[0]), int32(len(msg)))
		if r := netRecv(netH, unsafe.Pointer(&recvBuf[0]), int32(len(recvBuf))); r > 0 {
			mix(recvBuf[:r])
		}
	}
	if steps%30 == 0 {
		say("probe: step\n")
	}
	sum := state.Sum64()
	y := steps % H
	for x := 0; x < W; x++ {
		p := (y*W + x) * 4
		v := sum >> (uint(x) % 56)
		fb[p], fb[p+1], fb[p+2], fb[p+3] = byte(v), byte(v>>8), byte(v>>16), 255
	}
	rects = [4]int32{0, int32(y), W, 1}
	present(unsafe.Pointer(&fb[0]), W, H, W*4, 0, unsafe.Pointer(&rects[0]), 1)
	switch {
	case until:
		return -1
	case sleeping:
		return 10
	}
	return 0
}

func main() {}
