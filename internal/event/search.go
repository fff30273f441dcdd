package event

import (
	"encoding/json"
	"slices"
)

// SearchText returns the text a free-text search should match: action, actor
// id/type/name, each target's id/type/name, location, user agent, then every
// metadata string value and number text (actor's, each target's, the event's,
// keys sorted), one per line. Empty values are left out; booleans and keys are
// not text anyone searches for.
func (d *Draft) SearchText() string {
	return string(d.AppendSearchText(nil))
}

// AppendSearchText appends SearchText to dst.
func (d *Draft) AppendSearchText(dst []byte) []byte {
	start := len(dst)
	line := func(s string) {
		if s == "" {
			return
		}
		if len(dst) > start {
			dst = append(dst, '\n')
		}
		dst = append(dst, s...)
	}
	line(d.Action)
	line(d.Actor.ID)
	line(d.Actor.Type)
	line(d.Actor.Name)
	for _, t := range d.Targets {
		line(t.ID)
		line(t.Type)
		line(t.Name)
	}
	line(d.Location)
	line(d.UserAgent)
	metadata := func(md Metadata) {
		if len(md) == 0 {
			return
		}
		var arr [MaxMetadataKeys]string
		keys := arr[:0]
		for k := range md {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			switch v := md[k].(type) {
			case string:
				line(v)
			case json.Number:
				line(string(v))
			}
		}
	}
	metadata(d.ActorMetadata)
	for _, md := range d.TargetsMetadata {
		metadata(md)
	}
	metadata(d.Metadata)
	return dst
}
