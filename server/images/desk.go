package images

import (
	_ "embed"

	"replaydesk/server/images/desk/app"
	"replaydesk/server/images/desk/starter"
)

//go:embed desk/desk.wasm
var deskWasm string

func init() {
	register("desk", entry{
		wasm:  &deskWasm,
		disk:  starter.Disk,
		w:     app.Width,
		h:     app.Height,
		about: "a desktop for pair-working: terminals, an editor and a clock over a file system on the VM's disk",
	})
}
