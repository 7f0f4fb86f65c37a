package mpeg1

import "bytes"

// demux takes whole packs and packets of a program stream (ISO/IEC 11172-1,
// and the MPEG-2 pack and PES header forms) from d.in and appends the
// payload of the first video stream to d.es. It reports whether it consumed
// anything.
func (d *Decoder) demux() bool {
	progress := false
	for {
		in := d.in
		p := bytes.Index(in, startCodePrefix)
		if p < 0 {
			if len(in) > 3 {
				d.in = append(in[:0], in[len(in)-3:]...)
				progress = true
			}
			return progress
		}
		if p+4 > len(in) {
			if p > 0 {
				d.in = append(in[:0], in[p:]...)
				progress = true
			}
			return progress
		}
		code := in[p+3]
		var size int
		switch {
		case code == 0xBA: // pack header
			if p+5 > len(in) {
				return d.keepFrom(p) || progress
			}
			if in[p+4]>>6 == 1 { // MPEG-2
				if p+14 > len(in) {
					return d.keepFrom(p) || progress
				}
				size = 14 + int(in[p+13]&7)
			} else {
				size = 12
			}
		case code == 0xB9: // program end
			size = 4
		case code >= 0xBB: // system header and packets: a 16-bit length follows
			if p+6 > len(in) {
				return d.keepFrom(p) || progress
			}
			size = 6 + (int(in[p+4])<<8 | int(in[p+5]))
		default: // not at a packet: resynchronise after this prefix
			d.in = in[p+3:]
			progress = true
			continue
		}
		if p+size > len(in) {
			return d.keepFrom(p) || progress
		}
		pkt := in[p : p+size]
		d.in = in[p+size:]
		progress = true
		if code >= 0xE0 && code <= 0xEF && (d.video == 0 || d.video == code) {
			d.video = code
			if payload, ok := pesPayload(pkt); ok {
				d.es = append(d.es, payload...)
				return true // one packet at a time keeps d.es small
			}
		}
	}
}

// keepFrom drops the input before p; it reports whether it dropped any.
func (d *Decoder) keepFrom(p int) bool {
	if p == 0 {
		return false
	}
	d.in = d.in[p:]
	return true
}

// pesPayload returns the data of a video packet, after its header.
func pesPayload(pkt []byte) ([]byte, bool) {
	i := 6
	if i < len(pkt) && pkt[i]>>6 == 2 { // MPEG-2 PES header
		if i+3 > len(pkt) {
			return nil, false
		}
		i += 3 + int(pkt[i+2])
		return pkt[min(i, len(pkt)):], i <= len(pkt)
	}
	for i < len(pkt) && pkt[i] == 0xFF && i < 6+16 { // stuffing
		i++
	}
	if i < len(pkt) && pkt[i]>>6 == 1 { // STD buffer
		i += 2
	}
	if i >= len(pkt) {
		return nil, false
	}
	switch pkt[i] >> 4 {
	case 2:
		i += 5 // PTS
	case 3:
		i += 10 // PTS and DTS
	default:
		if pkt[i] != 0x0F {
			return nil, false
		}
		i++
	}
	if i > len(pkt) {
		return nil, false
	}
	return pkt[i:], true
}
