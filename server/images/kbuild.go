package images

import (
	_ "embed"
	"slices"
	"sync"

	"replaydesk/server/images/kbuild/kb"
	"replaydesk/server/images/kbuild/srctree"
)

//go:embed kbuild/kbuild.wasm
var kbuildWasm string

func init() {
	register("kbuild", entry{
		wasm:  &kbuildWasm,
		disk:  KbuildDisk,
		w:     kb.Width,
		h:     kb.Height,
		about: "compiles (compresses and hashes) a 4 MiB tree of C-like sources from its disk with a scrolling log: CPU-heavy, little screen change",
	})
}

// KbuildTreeBytes is the size of the kbuild image's source tree.
const KbuildTreeBytes = 4 << 20

var kbuildDisk = sync.OnceValue(func() []byte {
	disk, _, err := srctree.Build(srctree.Generate(KbuildTreeBytes))
	if err != nil {
		panic("images: kbuild disk: " + err.Error())
	}
	return disk
})

// KbuildDisk returns the kbuild image's initial disk: srctree's layout of a
// deterministic tree of about KbuildTreeBytes of pseudo-C, with an empty
// output area.
func KbuildDisk() []byte { return slices.Clone(kbuildDisk()) }
