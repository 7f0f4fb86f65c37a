package main

import (
	"net/http"

	"replaydesk/web"
)

// webApp is the browser app the local view serves: the same page a relay
// serves, talking to the client's own /ws/{session}.
func webApp() http.Handler { return web.Handler() }
