package privacy

import (
	"encoding/json"
	"strconv"

	"github.com/trailaudit/trail/internal/event"
)

// Hasher computes a value's keyed hash in an organization
// (keyring.FieldHasher).
type Hasher interface {
	Hash(org, value string) string
}

// Apply replaces the fields of d that p's rules for d's action name, in
// organization org, and re-encodes d.Tail with a "privacy" member listing
// them. It reports whether it changed anything; a draft the rules do not
// touch is left exactly as it was. Empty optional fields (a name, a user
// agent) are left empty.
func (p *Policy) Apply(d *event.Draft, org string, h Hasher) bool {
	if p == nil {
		return false
	}
	r := p.rulesFor(d.Action)
	var pr event.Privacy
	replace := func(path string, m Mode, s *string) {
		if m == ModeNone || *s == "" {
			return
		}
		if m == ModeRedact {
			*s = event.RedactedValue
			pr.Redacted = append(pr.Redacted, path)
			return
		}
		*s = h.Hash(org, *s)
		pr.Hashed = append(pr.Hashed, path)
	}
	meta := func(base string, md event.Metadata, rs []keyRule) {
		for _, kr := range rs {
			v, ok := md[kr.key]
			if !ok {
				continue
			}
			if s := metadataText(v); s != "" {
				replace(base+kr.key, kr.mode, &s)
				md[kr.key] = s
			}
		}
	}
	replace("actor.id", r.actorID, &d.Actor.ID)
	replace("actor.name", r.actorName, &d.Actor.Name)
	meta("actor.metadata.", d.ActorMetadata, r.actorMeta)
	for i := range d.Targets {
		if r.targetID == ModeNone && r.targetName == ModeNone && len(r.targetMeta) == 0 {
			break
		}
		base := "targets[" + strconv.Itoa(i) + "]."
		replace(base+"id", r.targetID, &d.Targets[i].ID)
		replace(base+"name", r.targetName, &d.Targets[i].Name)
		if i < len(d.TargetsMetadata) {
			meta(base+"metadata.", d.TargetsMetadata[i], r.targetMeta)
		}
	}
	meta("metadata.", d.Metadata, r.meta)
	replace("context.location", r.location, &d.Location)
	replace("context.user_agent", r.userAgent, &d.UserAgent)
	if len(pr.Hashed) == 0 && len(pr.Redacted) == 0 {
		return false
	}
	d.MarkPrivacy(pr)
	return true
}

// metadataText is a metadata value as text: a string as it is, a number
// as it was sent, a boolean as true or false.
func metadataText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}
