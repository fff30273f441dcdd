package event

// plainPrefix returns the length of the longest prefix of s made of bytes
// that need no attention inside a JSON string: printable ASCII other than '"'
// and '\\'. Nearly every byte of an event is such a byte, so both reading and
// writing strings skip them eight at a time.
func plainPrefix(s string) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	t := s
	for len(t) >= 8 {
		x := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		// Some high bit is set in, in turn, below, quote, slash or x iff some
		// byte is below 0x20, '"', '\\' (found as a zero byte after the XOR)
		// or non-ASCII. The subtraction tricks (Hacker's Delight, "haszero")
		// can mark extra bytes above a match, but never a word without one,
		// which is all a yes-or-no answer needs.
		below := (x - ones*0x20) & ^x
		quote := ((x ^ ones*'"') - ones) & ^(x ^ ones*'"')
		slash := ((x ^ ones*'\\') - ones) & ^(x ^ ones*'\\')
		if (below|quote|slash|x)&highs != 0 {
			break
		}
		t = t[8:]
	}
	i := len(s) - len(t)
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			break
		}
	}
	return i
}
