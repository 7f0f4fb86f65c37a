// Package mpeg1 is an MPEG-1 video decoder written from ISO/IEC 11172-2:
// sequence, group-of-pictures, picture, slice, macroblock and block layers;
// I, P, B (and D) pictures with forward, backward and bidirectional
// half-pel motion compensation; default and loaded quantiser matrices; a
// double-precision inverse DCT; and display reordering. It reads video
// elementary streams (.m1v) and demultiplexes the first video stream of
// program streams (.mpg, ISO/IEC 11172-1). Frames come out as YCbCr 4:2:0
// with a BT.601 conversion to RGBA.
//
// Input is pulled from an io.Reader (NewDecoder) or pushed as it arrives
// (NewPushDecoder, Feed, Next returning ErrNeedInput), which is how a guest
// that receives a video over a non-blocking net stream uses it. It is pure
// Go without dependencies so that it builds for wasip1 guests and natively.
//
// It must not know where the bytes come from (disks, net streams, files)
// nor about guests, the ABI or frames on a screen; it turns bytes into
// pictures, and never panics or loops forever on bad input.
package mpeg1
