package event

import "time"

// TimeLayout is how the canonical record writes times: UTC, always exactly
// three fractional digits, so that equal instants are equal bytes.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// parseTime parses an RFC 3339 date-time (section 5.6): a full date, 'T', a
// time with optional fractional seconds of any length, and 'Z' or a numeric
// offset. 't' and 'z' are accepted as RFC 3339 allows; the space separator of
// its note is not, since no SDK sends it. Leap seconds (:60) are rejected, as
// Go's time package cannot represent them. The result is UTC, truncated to the
// millisecond — the precision the record keeps.
//
// It is written out rather than using time.Parse so that the accepted grammar
// is exactly the one documented, and any fractional precision is allowed.
func parseTime(s string) (time.Time, bool) {
	// 2006-01-02T15:04:05Z is the shortest form.
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := s[19:]
	ms := 0
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && isDigit(rest[i]) {
			if i <= 3 {
				ms = ms*10 + int(rest[i]-'0')
			}
			i++
		}
		if i == 1 {
			return time.Time{}, false
		}
		for n := i; n <= 3; n++ { // fewer than three digits: ".7" is 700 ms
			ms *= 10
		}
		rest = rest[i:]
	}
	offset := 0 // seconds east of UTC
	switch {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, ms*int(time.Millisecond), time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// digits parses a fixed-width run of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// appendTime appends t in TimeLayout. It truncates below the millisecond, as
// formatting does, and converts to UTC.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		// Not representable in four digits; only reachable through a
		// hand-made Accepted, never through parsing.
		return t.AppendFormat(dst, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	dst = append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return dst
}
