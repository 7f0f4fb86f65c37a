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
// The rules, which Parse enforces strictly:
//
//   - Lines end in "\n" or "\r\n" and hold at most MaxLine bytes of valid
//     UTF-8. Blank lines and lines whose first non-blank character is '#' are
//     skipped (a UTF-8 byte order mark before line 1 is ignored). Every other
//     line is one JSON object and nothing else.
//   - "t" (required) is the event's time in seconds of virtual time from the
//     session start: a JSON number in 0..1e9, not before the previous line's.
//     It is read exactly from its decimal digits and rounded to the nearest
//     nanosecond.
//   - "user" (optional, default DefaultUser) names who sends the event: 1 to
//     MaxUserName bytes, no control characters. A script names at most
//     MaxUsers users.
//   - "type" (required) is key, text, move, button or wheel, and decides the
//     other fields, which must all belong to it (below).
//   - key: "code", a W3C KeyboardEvent.code name known to abi.KeyCodeByName;
//     "down", a bool; optionally "repeat", a bool, true only with "down":true.
//   - text: "text", 1 to MaxTextBytes bytes, split into abi.EvText events of
//     at most abi.MaxText bytes (abi.SplitText) that share the line's time.
//   - move: "x" and "y", integers 0..MaxCoord.
//   - button: "button", an integer 0..MaxButton, and "down".
//   - wheel: "dx", "dy" or both, integers -MaxWheel..MaxWheel.
//   - Unknown fields, fields of another type, duplicate fields, null and
//     values of the wrong JSON type (including 1.0 or 1e1 for an integer)
//     are errors.
//
// Errors are *LineError values naming the line, counted from 1 over all
// lines. Encode writes events back in this format; Random makes sessions of
// them; Sequencer hands them out as time passes, numbering users.
//
// It must not know about the machine, the log or sessions: it produces
// abi.Event values with a time, nothing else.
package inputscript
