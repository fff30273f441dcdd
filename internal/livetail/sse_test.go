package livetail

import (
	"bytes"
	"testing"
)

// TestAppendSSE: an event's data is the record as stored, or what the
// stream's transform makes of it; a record the transform drops is not sent.
func TestAppendSSE(t *testing.T) {
	rec := Record{Seq: 7, Record: []byte(`{"id":"evt_1","actor":{"id":"key_01SECRET"}}`)}
	for _, tt := range []struct {
		name      string
		transform func(Record) []byte
		want      string
	}{
		{"the record as stored", nil, "id: 7\nevent: event\ndata: {\"id\":\"evt_1\",\"actor\":{\"id\":\"key_01SECRET\"}}\n\n"},
		{"transformed", func(r Record) []byte { return []byte(`{"seq":7,"actor":{"type":"vendor"}}`) },
			"id: 7\nevent: event\ndata: {\"seq\":7,\"actor\":{\"type\":\"vendor\"}}\n\n"},
		{"dropped", func(Record) []byte { return nil }, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := appendSSE([]byte("before\n"), rec, tt.transform)
			if want := "before\n" + tt.want; string(got) != want {
				t.Errorf("appendSSE = %q, want %q", got, want)
			}
			if !bytes.Equal(rec.Record, []byte(`{"id":"evt_1","actor":{"id":"key_01SECRET"}}`)) {
				t.Errorf("the record changed: %s", rec.Record)
			}
		})
	}
}
