package images

import (
	_ "embed"

	"replaydesk/server/images/download/dl"
	"replaydesk/shared/abi"
	"replaydesk/shared/endpoints"
)

//go:embed download/download.wasm
var downloadWasm string

func init() {
	register("download", entry{
		wasm:      &downloadWasm,
		disk:      func() []byte { return make([]byte, dl.DiskBlocks*abi.BlockSize) },
		endpoints: []string{dl.Endpoint},
		sources:   map[string]endpoints.Factory{dl.Endpoint: DownloadSource()},
		w:         dl.Width,
		h:         dl.Height,
		about:     "downloads a 12 MiB file over a net stream and verifies it: network-heavy, little screen change",
	})
}

// DownloadSource is the download image's "files" endpoint: a file server
// offering dl.FileName, dl.FileSize bytes of ChaCha8 seeded with dl.Seed,
// generated as the guest reads it.
func DownloadSource() endpoints.Factory {
	return endpoints.FileServerFactory(map[string]endpoints.File{
		dl.FileName: endpoints.ChaChaFile(dl.Seed, dl.FileSize),
	})
}
