package main

import "net/http"

// webApp is the web app the local view serves (package web's Handler once
// it exists); nil gives the local view's fallback page.
func webApp() http.Handler { return nil }
