// Package starter builds the desk's initial disk: an 8 MiB deskfs volume
// with a few starter files, generated deterministically in Go so that no
// binary image is committed and every session starts from the same bytes.
//
// It runs on the host (the image registry calls Disk); it knows nothing
// about the guest, windows or the record log.
package starter

import (
	"fmt"
	"sort"

	"replaydesk/server/images/desk/deskfs"
)

// Blocks is the disk's size in 4 KiB blocks (8 MiB).
const Blocks = 2048

// mtime is the starter files' modification time (fixed, for determinism).
const mtime = 1767225600 // 2026-01-01 00:00:00 UTC

// Files are the starter files, by path.
var Files = map[string]string{
	"/README.txt": `Welcome to the desk
===================

This is a shared desktop: everyone in the session sees the same screen
and can use it. Each person's pointer carries their name.

  - The taskbar at the bottom opens a Terminal, the Editor and a Clock;
    its buttons for open windows bring them to the front.
  - Drag a window by its title bar; the red button closes it.
  - Keyboard input goes to the focused window (click one to focus it).

In a terminal, type "help" for the commands. Files live on this
machine's disk, so what you save stays saved for the whole session:
try  echo hello > hello.txt  and  edit hello.txt .

In the editor: arrows, Home/End, PageUp/PageDown, Shift to select
(or drag with the mouse), Ctrl+A selects all, Ctrl+S saves.

Nothing here is streamed as video: every viewer re-runs this desk
from the record of its inputs and gets the same pixels.
`,
	"/notes/todo.txt": `Todo
----
[x] boot the desk
[ ] try the terminal: ls, cat README.txt
[ ] edit this file and save it with Ctrl+S
[ ] drag a window around together
`,
	"/notes/ideas.txt": `Ideas
-----
- a file manager window
- split panes in the editor
- a shared whiteboard
`,
	"/samples/poem.txt": `The woods are lovely, dark and deep,
But I have promises to keep,
And miles to go before I sleep,
And miles to go before I sleep.
`,
	"/samples/hello.go": `package main

import "fmt"

func main() {
    fmt.Println("hello from the desk")
}
`,
}

// Format writes a fresh file system with the starter files onto dev.
func Format(dev deskfs.BlockDevice) error {
	if err := deskfs.Format(dev); err != nil {
		return err
	}
	fs, err := deskfs.Mount(dev)
	if err != nil {
		return err
	}
	fs.Now = func() int64 { return mtime }
	paths := make([]string, 0, len(Files))
	for p := range Files {
		paths = append(paths, p)
	}
	sort.Strings(paths) // a fixed order gives the same blocks every time
	for _, p := range paths {
		if err := fs.MkdirAll(parentDir(p)); err != nil {
			return err
		}
		if err := fs.WriteFile(p, []byte(Files[p])); err != nil {
			return err
		}
	}
	return nil
}

func parentDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}

// Disk returns the initial disk image.
func Disk() []byte {
	dev := deskfs.NewMemDevice(Blocks)
	if err := Format(dev); err != nil {
		panic(fmt.Sprintf("starter: building the desk's disk: %v", err)) // a bug, never an input
	}
	return dev
}
