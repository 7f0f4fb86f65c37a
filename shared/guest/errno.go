package guest

import (
	"strconv"

	"replaydesk/shared/abi"
)

// Errno is an error number returned by a host import (WASI preview 1
// numbering, see package abi).
type Errno int32

// The errno values the ABI v1 imports return.
const (
	ErrAcces       = Errno(abi.ErrnoAcces)
	ErrAgain       = Errno(abi.ErrnoAgain)
	ErrBadf        = Errno(abi.ErrnoBadf)
	ErrConnrefused = Errno(abi.ErrnoConnrefused)
	ErrFault       = Errno(abi.ErrnoFault)
	ErrInval       = Errno(abi.ErrnoInval)
	ErrIO          = Errno(abi.ErrnoIO)
	ErrNoent       = Errno(abi.ErrnoNoent)
	ErrNodev       = Errno(abi.ErrnoNodev)
	ErrNospc       = Errno(abi.ErrnoNospc)
	ErrNosys       = Errno(abi.ErrnoNosys)
	ErrPipe        = Errno(abi.ErrnoPipe)
	ErrRofs        = Errno(abi.ErrnoRofs)
)

var errnoNames = map[Errno][2]string{
	ErrAcces:       {"EACCES", "permission denied"},
	ErrAgain:       {"EAGAIN", "try again"},
	ErrBadf:        {"EBADF", "bad handle"},
	ErrConnrefused: {"ECONNREFUSED", "connection refused"},
	ErrFault:       {"EFAULT", "bad address"},
	ErrInval:       {"EINVAL", "invalid argument"},
	ErrIO:          {"EIO", "i/o error"},
	ErrNoent:       {"ENOENT", "no such endpoint"},
	ErrNodev:       {"ENODEV", "no such device"},
	ErrNospc:       {"ENOSPC", "no space left on device"},
	ErrNosys:       {"ENOSYS", "not implemented"},
	ErrPipe:        {"EPIPE", "closed by peer"},
	ErrRofs:        {"EROFS", "read-only disk"},
}

// Name is the errno's symbolic name, such as "ENODEV", or "errno N".
func (e Errno) Name() string {
	if n, ok := errnoNames[e]; ok {
		return n[0]
	}
	return "errno " + strconv.Itoa(int(e))
}

// Error returns the name and a short description, such as
// "ENODEV: no such device".
func (e Errno) Error() string {
	if n, ok := errnoNames[e]; ok {
		return n[0] + ": " + n[1]
	}
	return "errno " + strconv.Itoa(int(e))
}

// errnoErr converts an import's errno result to an error; 0 is nil.
func errnoErr(r int32) error {
	if r == abi.ErrnoSuccess {
		return nil
	}
	return Errno(r)
}
