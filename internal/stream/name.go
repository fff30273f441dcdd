package stream

import (
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/textsafe"
)

// MaxNameLen bounds a stream's name, in characters.
const MaxNameLen = 200

// CheckName is the one rule of a stream's name, for the API and the Admin
// Portal alike: at most MaxNameLen characters of valid UTF-8, on one line,
// without control characters (which a terminal would obey), as the names
// of an event's actor and targets. It returns nil when name is fine;
// whether an empty name is allowed is the caller's to say (a new stream is
// named after its type).
func CheckName(name string) *FieldError {
	if utf8.ValidString(name) && utf8.RuneCountInString(name) <= MaxNameLen && !textsafe.HasControl(name) {
		return nil
	}
	fe := fieldError("name", "invalid", "name must be one line of at most %d characters, without control characters.", MaxNameLen)
	return &fe
}
