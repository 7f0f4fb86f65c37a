package inputscript

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

var (
	errNegative = errors.New("is negative")
	errTooLarge = errors.New("is too large (at most 1000000000 seconds)")
	errNotNum   = errors.New("is not a number")
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseSeconds converts a JSON number literal counting seconds to a duration
// exactly, rounding to the nearest nanosecond (halves up). It works on the
// decimal digits, never through float64, so Encode's output reads back equal.
func parseSeconds(lit string) (time.Duration, error) {
	s := lit
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart, s := s[:i], s[i:]
	if intPart == "" {
		return 0, errNotNum
	}
	frac := ""
	if strings.HasPrefix(s, ".") {
		s = s[1:]
		j := 0
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j == 0 {
			return 0, errNotNum
		}
		frac, s = s[:j], s[j:]
	}
	exp := 0
	if len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		eneg := false
		if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
			eneg, s = s[0] == '-', s[1:]
		}
		if s == "" {
			return 0, errNotNum
		}
		for k := 0; k < len(s); k++ {
			if !isDigit(s[k]) {
				return 0, errNotNum
			}
			if exp < 100_000_000 { // saturate: beyond this only zero or "too large" is possible
				exp = exp*10 + int(s[k]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
		s = ""
	}
	if s != "" {
		return 0, errNotNum
	}

	// value = digits × 10^k nanoseconds
	digits := strings.TrimLeft(intPart+frac, "0")
	k := exp - len(frac) + 9
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		k++
	}
	if digits == "" {
		return 0, nil // zero, including -0
	}
	if neg {
		return 0, errNegative
	}
	intDigits := len(digits) + k // digits of the whole nanoseconds
	if intDigits > 19 {
		return 0, errTooLarge
	}
	var n uint64
	switch {
	case k >= 0:
		n, _ = strconv.ParseUint(digits+strings.Repeat("0", k), 10, 64)
	case intDigits < 0:
		n = 0
	case intDigits == 0:
		if digits[0] >= '5' {
			n = 1
		}
	default:
		n, _ = strconv.ParseUint(digits[:intDigits], 10, 64)
		if digits[intDigits] >= '5' {
			n++
		}
	}
	if n > uint64(MaxAt) {
		return 0, errTooLarge
	}
	return time.Duration(n), nil
}

// formatSeconds writes d as decimal seconds with no more digits than needed:
// "2", "1.25", "0.000000001". parseSeconds reads it back exactly.
func formatSeconds(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign = "-"
		d = -d // d is never math.MinInt64 here: times are checked first
	}
	sec, ns := int64(d/time.Second), int64(d%time.Second)
	if ns == 0 {
		return sign + strconv.FormatInt(sec, 10)
	}
	f := strconv.FormatInt(ns, 10)
	f = strings.Repeat("0", 9-len(f)) + f
	return sign + strconv.FormatInt(sec, 10) + "." + strings.TrimRight(f, "0")
}
