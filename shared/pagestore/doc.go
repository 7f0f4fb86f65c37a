// Package pagestore is the content-addressed form of a snapshot (DESIGN.md
// section 5): a Manifest (page index → SHA-256 of the page, zero pages
// elided, plus globals, device state and the log position) and the pages
// themselves, each stored compressed and immutable under its hash.
//
// Because a page is named by its content, any copy of it anywhere (the
// server's store, a relay, a client's disk cache, an HTTP cache) is as good
// as any other, and a page seen once never has to be fetched again. Every
// reader verifies a page against its hash, so a copy that went bad on a
// disk or in transit is refused rather than restored into a machine.
//
// A DirStore is shared by sessions and processes: publishers hold the
// manifests they serve, and Release deletes only what no hold reaches
// (gc.go), under a lock that keeps it from racing a publisher.
//
// It must not know about wazero, the machine or HTTP: it turns a
// snapshot.Snapshot into hashes and bytes and back. The formats are in
// docs/page-service.md.
package pagestore
