// Package pageservice serves content-addressed snapshot pages and manifests
// over HTTP (DESIGN.md sections 5 and 8), and is the client that fetches
// them. The protocol is in docs/page-service.md.
//
// Pages and manifests are named by their SHA-256, so their URLs are
// immutable: the server marks them cacheable forever, and any relay, HTTP
// cache or CDN in between may keep them. The client therefore trusts no one
// on the way: it verifies every page against its hash and refuses a
// corrupted one.
//
// Publishing into a shared store goes through PublishHeld, which holds the
// manifest for its session so that the store's collection (pagestore,
// Release) never deletes a page a kept snapshot of any session names.
//
// It must not know about wazero, the machine, or what a page holds: it moves
// pagestore pages and manifests, and lists a session's snapshots.
package pageservice
