// Package display encodes a server screen for DISPLAY MODE and paints it back.
//
// Viewers that cannot replay the machine receive pixels instead: the server
// encodes its screen once per session as damaged, aligned tiles and the relay
// forwards the same tiles to every display viewer (DESIGN.md sections 6 and 8).
// An Encoder turns an RGBA framebuffer plus damage rectangles into Tiles whose
// encodings are those of wire.Encoding (solid, palette, zlib, jpeg; the Decoder
// also accepts raw and png). Unchanged tiles are never sent: the Encoder keeps
// the previous frame and compares, because damage may over-report.
//
// Lossy mode uses a built-in baseline JPEG encoder with 4:4:4 sampling (no
// chroma subsampling), matching the VNC baseline "quality level 6" = libjpeg
// quality 79, 4:4:4. Go's image/jpeg always subsamples chroma 4:2:0, which
// smears coloured text and thin coloured lines.
//
// The package is pure computation on byte slices. It must not know about
// networking, sessions, relays, modes or the deterministic machine: callers
// hand it a framebuffer and damage, and send or paint the tiles themselves.
package display
