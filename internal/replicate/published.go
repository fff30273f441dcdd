package replicate

import (
	"encoding/json"
	"fmt"
	"time"
)

// Record is what the replica target holds of publication: for each log the
// newest checkpoint published, and how many of its events had been
// acknowledged when the record was written (after the replica held them).
type Record struct {
	// WrittenAt is when the Acknowledged counts were taken: every event
	// acknowledged before it is counted; those acknowledged after it
	// cannot be known to a restore.
	WrittenAt time.Time   `json:"written_at"`
	Logs      []RecordLog `json:"logs"`
}

// RecordLog is one log's line in a Record.
type RecordLog struct {
	OrganizationID string `json:"organization_id"`
	// Size is the size of Checkpoint, the newest published.
	Size       int64  `json:"size"`
	Checkpoint string `json:"checkpoint"`
	// Acknowledged is the number of the log's events acknowledged when the
	// record was written: a restore that holds fewer lost the rest.
	Acknowledged int64 `json:"acknowledged"`
}

func (r Record) encode() ([]byte, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode the record of published checkpoints: %w", err)
	}
	return data, nil
}

// parseRecord reads a Record written by WritePublished.
func parseRecord(data []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, fmt.Errorf("the record of published checkpoints is not valid JSON: %w", err)
	}
	return r, nil
}
