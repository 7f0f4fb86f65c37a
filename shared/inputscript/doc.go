// Package inputscript reads input scripts: JSON Lines files of timed input
// events that `server record --input FILE` feeds to a machine, and makes
// random input for soak tests.
//
// One line is one event, for example
//
//	{"t":1.25,"user":"u1","type":"key","code":"KeyA","down":true}
//	{"t":1.30,"type":"text","text":"hello"}
//	{"t":2,"type":"move","x":10,"y":20}
//	{"t":2.1,"type":"button","button":0,"down":true}
//	{"t":3,"type":"wheel","dy":-3}
//
// It must not know about the machine, the log or sessions: it produces
// abi.Event values with a time, nothing else.
package inputscript
