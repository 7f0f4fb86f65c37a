//go:build wasip1

package guest

import "unsafe"

// The host's imports, module "replaydesk_v1" (abi.Module). Signatures are in
// docs/abi.md. Pointers are wasm32 addresses (unsafe.Pointer lowers to i32).

//go:wasmimport replaydesk_v1 present
func hostPresent(fb unsafe.Pointer, w, h, stride, format int32, rects unsafe.Pointer, nrects int32)

//go:wasmimport replaydesk_v1 input_poll
func hostInputPoll(buf unsafe.Pointer, max int32) int32

//go:wasmimport replaydesk_v1 disk_info
func hostDiskInfo(out unsafe.Pointer) int32

//go:wasmimport replaydesk_v1 disk_read
func hostDiskRead(block int64, buf unsafe.Pointer) int32

//go:wasmimport replaydesk_v1 disk_write
func hostDiskWrite(block int64, buf unsafe.Pointer) int32

//go:wasmimport replaydesk_v1 net_open
func hostNetOpen(name unsafe.Pointer, n int32) int32

//go:wasmimport replaydesk_v1 net_send
func hostNetSend(h int32, buf unsafe.Pointer, n int32) int32

//go:wasmimport replaydesk_v1 net_recv
func hostNetRecv(h int32, buf unsafe.Pointer, n int32) int32

//go:wasmimport replaydesk_v1 net_close
func hostNetClose(h int32) int32

//go:wasmimport replaydesk_v1 console_write
func hostConsoleWrite(buf unsafe.Pointer, n int32)
