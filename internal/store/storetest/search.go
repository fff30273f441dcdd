package storetest

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// searchEvent is a stored event of the search fixture with the fields the
// brute-force filter reads.
type searchEvent struct {
	store.StoredEvent
	at        time.Time
	action    string
	actorID   string
	actorName string
	targets   []event.Entity
	tokens    []string // of Draft.SearchText, as a search engine would split it
}

// searchFixture is one store holding ~500 events of three organizations,
// indexed as its indexing says, and the same events in memory.
type searchFixture struct {
	s      store.Backend
	orgs   []string
	events []searchEvent
	// between, when set, runs before every search of a walk but the
	// first (an indexer pass between two pages).
	between func()
}

// hot is the start of the 60 ms in which most fixture events occur, so that
// many share a millisecond (within and across organizations).
var hot = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

var (
	searchActions = []string{
		"user.signed_in", "user.signed_out", "user.created", "user.deleted",
		"document.created", "document.deleted", "document.shared",
		"team.member_added", "team.member_removed", "billing.invoice_paid",
	}
	// Two actors share a name, so that filtering by name and by id differ.
	searchActors = []event.Entity{
		{ID: "user_01", Type: "user", Name: "Alice Johnson"},
		{ID: "user_02", Type: "user", Name: "Alice Johnson"},
		{ID: "user_03", Type: "user", Name: "Bob Smith"},
		{ID: "user_04", Type: "user", Name: "Carol Diaz"},
		{ID: "user_05", Type: "user", Name: "Dave Kim"},
		{ID: "user_06", Type: "user", Name: "Erin Lopez"},
		{ID: "user_07", Type: "user", Name: "Frank Moore"},
		{ID: "user_08", Type: "user", Name: "Grace Hopper"},
		{ID: "user_09", Type: "user"},
		{ID: "svc_deployer", Type: "service", Name: "Deploy Bot"},
		// Values a full-text index folds together or finds no word in:
		// filters on them are exact all the same.
		{ID: "USER_01", Type: "user", Name: "alice johnson"},
		{ID: "--", Type: "user", Name: "José Núñez"},
		{ID: "user_12", Type: "user", Name: "Jose Nunez"},
		{ID: "user_13", Type: "user", Name: "..."},
		{ID: "user_14", Type: "user", Name: "日本語"},
		{ID: "ᦰ", Type: "user", Name: "ᦰ ᦱ"},
	}
	searchTargets = func() []event.Entity {
		var ts []event.Entity
		for i := 1; i <= 4; i++ {
			ts = append(ts, event.Entity{ID: fmt.Sprintf("team_%d", i), Type: "team", Name: fmt.Sprintf("Team %d", i)})
		}
		for i := 1; i <= 6; i++ {
			ts = append(ts, event.Entity{ID: fmt.Sprintf("doc_%d", i), Type: "document"})
		}
		for i := 1; i <= 3; i++ {
			ts = append(ts, event.Entity{ID: fmt.Sprintf("inv_%d", i), Type: "invoice"})
		}
		for _, a := range searchActors[:9] {
			ts = append(ts, event.Entity{ID: a.ID, Type: "user", Name: a.Name})
		}
		return append(ts,
			event.Entity{ID: "DOC_3", Type: "document"},
			event.Entity{ID: "::", Type: "document"},
			event.Entity{ID: "::", Type: "team"},
			// A separator that is no control character: ids may not hold
			// those (the event's rules refuse them).
			event.Entity{ID: "doc_3\u00a0doc", Type: "document"},
		)
	}()
	searchWords      = []string{"alpha", "bravo", "charlie", "delta", "echo"}
	searchLocations  = []string{"203.0.113.7", "198.51.100.23", "192.0.2.1"}
	searchUserAgents = []string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari/605.1.15",
		"trail-cli/1.4.2",
	}
)

// searchSpec draws one fixture event of org (the org index i decides a few
// words only that organization's events contain).
func searchSpec(rng *rand.Rand, org int) spec {
	var at time.Time
	if rng.IntN(10) < 7 {
		at = hot.Add(time.Duration(rng.IntN(60)) * time.Millisecond)
	} else { // anywhere within three days either side
		at = hot.Add(time.Duration(rng.Int64N(int64(6*24*time.Hour))) - 3*24*time.Hour).Truncate(time.Millisecond)
	}
	actor := searchActors[rng.IntN(len(searchActors))]
	e := spec{
		Action:     searchActions[rng.IntN(len(searchActions))],
		OccurredAt: at,
		Actor:      entity{ID: actor.ID, Type: actor.Type, Name: actor.Name},
		Location:   searchLocations[rng.IntN(len(searchLocations))],
		UserAgent:  searchUserAgents[rng.IntN(len(searchUserAgents))],
		Metadata:   map[string]any{},
	}
	if actor.Name != "" && actor.Type == "user" {
		e.Actor.Metadata = map[string]any{"email": strings.ToLower(strings.Fields(actor.Name)[0]) + "@example.com"}
	}
	for range rng.IntN(4) {
		t := searchTargets[rng.IntN(len(searchTargets))]
		e.Targets = append(e.Targets, entity{ID: t.ID, Type: t.Type, Name: t.Name})
	}
	if len(e.Targets) > 0 && rng.IntN(8) == 0 { // the same target twice
		e.Targets = append(e.Targets, e.Targets[0])
	}
	if rng.IntN(10) < 6 {
		e.Metadata["note"] = searchWords[rng.IntN(len(searchWords))]
	}
	if org == 1 && rng.IntN(3) == 0 {
		e.Metadata["codename"] = "zulu"
	}
	if strings.HasPrefix(e.Action, "team.") {
		// A word starting with "org", as a backend's organization key
		// may (see the TextPrefixOrg cases).
		e.Metadata["scope"] = "organization"
	}
	if rng.IntN(2) == 0 {
		e.Metadata["attempt"] = rng.IntN(5)
	}
	return e
}

// indexing is how much of a search fixture a store that indexes after the
// fact (store.SearchIndexer) has indexed when the cases run. The contract
// is read-your-writes: every answer is the same whatever it is.
type indexing int

const (
	indexedFully  indexing = iota // everything
	indexedPartly                 // part of the way, batches ending at arbitrary points
	indexedNone                   // nothing: every event waits for the indexer
)

func (i indexing) String() string {
	return [...]string{"Indexed", "PartlyIndexed", "NotIndexed"}[i]
}

// newSearchFixture appends ~500 events to three organizations of a fresh
// store, in calls of varied size with organizations interleaved, indexing
// part of the way in between (unless indexedNone) so that index batches end
// at arbitrary points, and all of it at the end if indexedFully.
func newSearchFixture(t *testing.T, s store.Backend, ix indexing) *searchFixture {
	t.Helper()
	f := &searchFixture{s: s, orgs: []string{orgID("SA", 1), orgID("SB", 2), orgID("SC", 3)}}
	for _, o := range f.orgs {
		mustCreateOrg(t, s, o, t0)
	}
	rng := rand.New(rand.NewPCG(20261125, 42))
	type gen struct {
		pe store.PendingEvent
		d  *event.Draft
	}
	var all []gen
	for i := range 500 {
		org := 0
		switch r := rng.IntN(20); {
		case r >= 16:
			org = 2
		case r >= 9:
			org = 1
		}
		d := draft(t, searchSpec(rng, org).json())
		all = append(all, gen{pending(f.orgs[org], d, t0.Add(time.Duration(i)*time.Millisecond)), d})
	}
	for len(all) > 0 {
		var subs []store.Submission
		var drafts [][]*event.Draft
		for n := 1 + rng.IntN(80); n > 0 && len(all) > 0; {
			k := min(1+rng.IntN(4), n, len(all))
			var sub store.Submission
			var ds []*event.Draft
			for _, g := range all[:k] {
				sub.Events = append(sub.Events, g.pe)
				ds = append(ds, g.d)
			}
			subs, drafts = append(subs, sub), append(drafts, ds)
			all, n = all[k:], n-k
		}
		res, err := s.Append(ctxOf(t), subs, t0)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		for i, r := range res {
			if r.Err != nil || len(r.Events) != len(subs[i].Events) {
				t.Fatalf("Append result %d = %+v", i, r)
			}
			for j, a := range r.Events {
				d := drafts[i][j]
				f.events = append(f.events, searchEvent{
					StoredEvent: store.StoredEvent{OrganizationID: a.OrganizationID, Seq: a.Seq, ID: a.ID, Record: record(a, d.Tail)},
					at:          d.OccurredAt, action: d.Action, actorID: d.Actor.ID, actorName: d.Actor.Name,
					targets: d.Targets, tokens: words(d.SearchText()),
				})
			}
		}
		if rng.IntN(3) == 0 {
			n := 1 + rng.IntN(50)
			if ix != indexedNone {
				indexAll(t, s, n)
			}
		}
	}
	if ix == indexedFully {
		indexAll(t, s, 64)
	}
	return f
}

// words splits text as a full-text index does: runs of letters, digits and
// '_', case folded. (The fixture's text is ASCII but for two names no free
// text query looks for, and there every reasonable tokenizer that keeps
// identifiers such as user_07 whole agrees.)
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_'
	})
}

// textMatches is free-text search by brute force: every whitespace-separated
// word of the query must occur in the event's text as written, that is as the
// consecutive words it splits into; a trailing * makes the word's last part a
// prefix. Query syntax (AND, OR, NOT, quotes, parentheses) means nothing: it
// is text like any other.
func textMatches(doc []string, query string) bool {
	for _, w := range strings.Fields(query) {
		prefix := strings.HasSuffix(w, "*")
		phrase := words(strings.TrimRight(w, "*"))
		if len(phrase) == 0 {
			continue
		}
		found := false
		for i := 0; i+len(phrase) <= len(doc) && !found; i++ {
			found = true
			for k, p := range phrase {
				d := doc[i+k]
				if d != p && !(prefix && k == len(phrase)-1 && strings.HasPrefix(d, p)) {
					found = false
					break
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// matches is the brute-force EventQuery filter (without order and paging).
func (e *searchEvent) matches(q store.EventQuery) bool {
	if e.OrganizationID != q.OrganizationID {
		return false
	}
	if !q.From.IsZero() && e.at.Before(q.From) || !q.To.IsZero() && !e.at.Before(q.To) {
		return false
	}
	if len(q.Actions)+len(q.ActionPrefixes) > 0 {
		ok := slices.Contains(q.Actions, e.action)
		for _, p := range q.ActionPrefixes {
			ok = ok || strings.HasPrefix(e.action, p)
		}
		if !ok {
			return false
		}
	}
	if q.ActorID != "" && e.actorID != q.ActorID || q.ActorName != "" && e.actorName != q.ActorName {
		return false
	}
	if q.TargetType != "" || q.TargetID != "" {
		if !slices.ContainsFunc(e.targets, func(t event.Entity) bool {
			return (q.TargetType == "" || t.Type == q.TargetType) && (q.TargetID == "" || t.ID == q.TargetID)
		}) {
			return false
		}
	}
	return q.Text == "" || textMatches(e.tokens, q.Text)
}

// expect returns what q must find, in q's order: (occurred_at, seq)
// ascending for OrderAsc, else descending.
func (f *searchFixture) expect(q store.EventQuery) []*searchEvent {
	var out []*searchEvent
	for i := range f.events {
		if f.events[i].matches(q) {
			out = append(out, &f.events[i])
		}
	}
	slices.SortFunc(out, func(a, b *searchEvent) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.Seq, b.Seq))
	})
	if q.Order != store.OrderAsc {
		slices.Reverse(out)
	}
	return out
}

func describe(evs []store.StoredEvent) string {
	var b strings.Builder
	for i, e := range evs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d", e.Seq)
	}
	return "seqs [" + b.String() + "]"
}

func describeWant(evs []*searchEvent) string {
	out := make([]store.StoredEvent, len(evs))
	for i, e := range evs {
		out[i] = e.StoredEvent
	}
	return describe(out)
}

// samePage reports whether got is exactly want, records included.
func samePage(got []store.StoredEvent, want []*searchEvent) bool {
	return slices.EqualFunc(got, want, func(g store.StoredEvent, w *searchEvent) bool {
		return g.OrganizationID == w.OrganizationID && g.Seq == w.Seq && g.ID == w.ID && bytes.Equal(g.Record, w.Record)
	})
}

// check runs q page by page, limit events a page: forward with After to the
// end, then back with Before to the start, and checks each page's events and
// cursors against the brute-force answer. It reports the first difference.
func (f *searchFixture) check(t *testing.T, q store.EventQuery) {
	t.Helper()
	ctx := ctxOf(t)
	want := f.expect(q)
	size := q.Limit
	if size == 0 {
		size = 10
	}
	label := fmt.Sprintf("%+v", q)
	searches := 0
	search := func(q store.EventQuery) (store.EventPage, bool) {
		t.Helper()
		if searches++; searches > 1 && f.between != nil {
			f.between()
		}
		page, err := f.s.SearchEvents(ctx, q)
		if err != nil {
			t.Errorf("SearchEvents(%+v): %v", q, err)
			return page, false
		}
		for _, e := range page.Events {
			if e.OrganizationID != q.OrganizationID {
				t.Errorf("SearchEvents(%+v) returned an event of %s (tenant isolation)", q, e.OrganizationID)
				return page, false
			}
		}
		return page, true
	}

	// Forward.
	var pages []store.EventPage
	p := q
	for i := 0; ; i++ {
		page, ok := search(p)
		if !ok {
			return
		}
		lo, hi := min(i*size, len(want)), min((i+1)*size, len(want))
		if !samePage(page.Events, want[lo:hi]) {
			t.Errorf("%s\nforward page %d: got %s\nwant %s", label, i, describe(page.Events), describeWant(want[lo:hi]))
			return
		}
		if (page.Before != "") != (i > 0 && hi > lo) || (page.After != "") != (hi < len(want)) {
			t.Errorf("%s\nforward page %d of %d events (limit %d): before=%q after=%q; want before set iff events precede the page, after set iff more follow",
				label, i, len(want), size, page.Before, page.After)
			return
		}
		pages = append(pages, page)
		if page.After == "" {
			break
		}
		if i > len(want)/size+1 {
			t.Errorf("%s\nthe forward walk does not end", label)
			return
		}
		p.After, p.Before = page.After, ""
	}

	// Backward from the last page, following each page's before cursor.
	cur := pages[len(pages)-1]
	for i := len(pages) - 2; i >= 0; i-- {
		p.After, p.Before = "", cur.Before
		page, ok := search(p)
		if !ok {
			return
		}
		if !samePage(page.Events, want[i*size:(i+1)*size]) {
			t.Errorf("%s\nbackward to page %d: got %s\nwant %s", label, i, describe(page.Events), describeWant(want[i*size:(i+1)*size]))
			return
		}
		if (page.Before != "") != (i > 0) || page.After == "" {
			t.Errorf("%s\nbackward to page %d: before=%q after=%q; want before set iff events precede, after set", label, i, page.Before, page.After)
			return
		}
		cur = page
	}
	// And forward again from the first page reached backward.
	if len(pages) > 1 {
		p.After, p.Before = cur.After, ""
		page, ok := search(p)
		if !ok {
			return
		}
		if !samePage(page.Events, want[size:min(2*size, len(want))]) {
			t.Errorf("%s\nforward from the first page reached backward: got %s\nwant %s", label, describe(page.Events), describeWant(want[size:min(2*size, len(want))]))
		}
	}
}

// searchCase is a filter the suite checks for every organization and order.
type searchCase struct {
	name string
	q    store.EventQuery // OrganizationID, Order are set per run
}

func searchCases() []searchCase {
	ms := func(n int) time.Time { return hot.Add(time.Duration(n) * time.Millisecond) }
	half := 500 * time.Microsecond
	many := slices.Clone(searchActions)
	for i := range 30 {
		many = append(many, fmt.Sprintf("unused.action_%d", i))
	}
	return []searchCase{
		{"All", store.EventQuery{}},
		{"From", store.EventQuery{From: ms(20)}},
		{"To", store.EventQuery{To: ms(45)}},
		{"Range", store.EventQuery{From: ms(20), To: ms(45)}},
		{"RangeOneMillisecond", store.EventQuery{From: ms(30), To: ms(31)}},
		{"RangeSubMillisecondBounds", store.EventQuery{From: ms(20).Add(half), To: ms(45).Add(half)}},
		{"RangeEmpty", store.EventQuery{From: ms(30), To: ms(30)}},
		{"RangeInverted", store.EventQuery{From: ms(45), To: ms(20)}},
		{"Action", store.EventQuery{Actions: []string{"user.signed_in"}}},
		{"Actions", store.EventQuery{Actions: []string{"user.signed_in", "document.deleted", "team.member_added"}}},
		{"ActionUnknown", store.EventQuery{Actions: []string{"nothing.happened"}}},
		{"ActionsMany", store.EventQuery{Actions: many}},
		{"ActionPrefix", store.EventQuery{ActionPrefixes: []string{"user."}}},
		{"ActionPrefixes", store.EventQuery{ActionPrefixes: []string{"user.signed_", "team."}}},
		{"ActionPrefixUnknown", store.EventQuery{ActionPrefixes: []string{"nothing."}}},
		{"ActionsAndPrefix", store.EventQuery{Actions: []string{"document.shared"}, ActionPrefixes: []string{"user."}}},
		{"ActionAndOverlappingPrefix", store.EventQuery{Actions: []string{"user.signed_in"}, ActionPrefixes: []string{"user."}}},
		{"OverlappingPrefixes", store.EventQuery{ActionPrefixes: []string{"user.", "user.signed_"}}},
		{"ActorID", store.EventQuery{ActorID: "user_01"}},
		{"ActorName", store.EventQuery{ActorName: "Alice Johnson"}},
		{"TargetType", store.EventQuery{TargetType: "document"}},
		{"TargetTypeAndID", store.EventQuery{TargetType: "document", TargetID: "doc_3"}},
		{"TargetTypeAndIDOfAnotherType", store.EventQuery{TargetType: "team", TargetID: "doc_3"}},
		{"TargetTypeUser", store.EventQuery{TargetType: "user", TargetID: "user_01"}},
		{"TargetID", store.EventQuery{TargetID: "doc_3"}},
		{"TargetIDCase", store.EventQuery{TargetID: "DOC_3"}},
		{"TargetIDNoWord", store.EventQuery{TargetID: "::"}},
		{"TargetTypeAndIDNoWord", store.EventQuery{TargetType: "team", TargetID: "::"}},
		{"TargetIDControl", store.EventQuery{TargetID: "doc_3\x1edoc"}},
		{"TargetIDSeparator", store.EventQuery{TargetID: "doc_3\u00a0doc"}},
		{"ActorIDCase", store.EventQuery{ActorID: "USER_01"}},
		{"ActorIDNoWord", store.EventQuery{ActorID: "--"}},
		{"ActorNameCase", store.EventQuery{ActorName: "alice johnson"}},
		{"ActorNameDiacritics", store.EventQuery{ActorName: "Jose Nunez"}},
		{"ActorNameAccented", store.EventQuery{ActorName: "José Núñez"}},
		{"ActorNameNoWord", store.EventQuery{ActorName: "..."}},
		{"ActorIDNUL", store.EventQuery{ActorID: "a\x00b"}}, // no event has one: requests cannot
		{"ActorNameNUL", store.EventQuery{ActorName: "\x00"}},
		{"TargetIDNUL", store.EventQuery{TargetType: "team", TargetID: "a\x00"}},
		{"TextNUL", store.EventQuery{Text: "alpha\x00bravo"}},
		{"ActorIDNonASCII", store.EventQuery{ActorID: "ᦰ"}},
		{"ActorNameNonASCII", store.EventQuery{ActorName: "日本語"}},
		{"ActorNameNonASCIIWords", store.EventQuery{ActorName: "ᦰ ᦱ"}},
		{"Text", store.EventQuery{Text: "alpha"}},
		{"TextTwoWords", store.EventQuery{Text: "alpha johnson"}},
		{"TextCaseInsensitive", store.EventQuery{Text: "ALPHA Johnson"}},
		{"TextUnderscoreID", store.EventQuery{Text: "user_07"}},
		{"TextPrefix", store.EventQuery{Text: "sign*"}},
		{"TextPrefixID", store.EventQuery{Text: "doc_*"}},
		{"TextEmail", store.EventQuery{Text: "carol@example.com"}},
		{"TextIP", store.EventQuery{Text: "203.0.113.7"}},
		{"TextOperators", store.EventQuery{Text: `"AND OR NOT * ( )`}},
		{"TextOrIsAWord", store.EventQuery{Text: "alpha OR bravo"}},
		{"TextNotIsAWord", store.EventQuery{Text: "NOT alpha"}},
		{"TextQuoted", store.EventQuery{Text: `"bravo"`}},
		{"TextColumnSyntax", store.EventQuery{Text: "body:alpha org:x"}},
		{"TextOtherTenantsWord", store.EventQuery{Text: "zulu"}},
		{"TextNoMatch", store.EventQuery{Text: "xylophone"}},
		// Words a backend's own index keys could answer for: a prefix of
		// the organization's id, and phrases ending in a prefix.
		{"TextPrefixOrgID", store.EventQuery{Text: "org_01jts*"}},
		{"TextPhrasePrefix", store.EventQuery{Text: "203.0.11*"}},
		{"TextSinglePrefix", store.EventQuery{Text: "a*"}},
		// Words of the user agent, which a backend may index apart from
		// the rest of the text (one entry per distinct value): inside it,
		// as prefixes, and phrases that run into it from the location
		// before it, out of it into the metadata after it, and across it.
		{"TextOnlyInUserAgent", store.EventQuery{Text: "firefox"}},
		{"TextPrefixInUserAgent", store.EventQuery{Text: "Saf*"}},
		{"TextPhraseInUserAgent", store.EventQuery{Text: "rv:132.0)"}},
		{"TextPhraseInUserAgentPrefix", store.EventQuery{Text: "Gecko/2010*"}},
		{"TextPhraseIntoUserAgent", store.EventQuery{Text: "113.7/Mozilla/5.0"}},
		{"TextPhraseIntoUserAgentPrefix", store.EventQuery{Text: "2.1/trail-c*"}},
		{"TextPhraseOutOfUserAgent", store.EventQuery{Text: "1.4.2/alice@example.com"}},
		{"TextPhraseOutOfUserAgentPrefix", store.EventQuery{Text: "Firefox/132.0/bob@ex*"}},
		{"TextPhraseAcrossUserAgent", store.EventQuery{Text: "192.0.2.1/trail-cli/1.4.2/carol"}},
		{"TextPhraseAcrossUserAgentPrefix", store.EventQuery{Text: "23:trail-cli/1.4.2.a*"}},
		{"TextPhraseSkippingUserAgent", store.EventQuery{Text: "203.0.113.7/alice"}},
		{"TextUserAgentAndWord", store.EventQuery{Text: "linux alpha"}},
		// Prefixes of "org": "organization" and "os" (in "Mac OS X") match,
		// and nothing else does, whatever a backend keys its tenants by.
		{"TextPrefixOrg", store.EventQuery{Text: "org*"}},
		{"TextPrefixOr", store.EventQuery{Text: "or*"}},
		{"TextPrefixO", store.EventQuery{Text: "o*"}},
		{"TextPrefixOrgUpper", store.EventQuery{Text: "ORG*"}},
		{"TextPrefixOrgAndWord", store.EventQuery{Text: "org* bravo"}},
		{"TextWordOrganization", store.EventQuery{Text: "organization"}},
		{"TextPhrasePrefixO", store.EventQuery{Text: "mac.o*"}},
		{"TextPhrasePrefixOrg", store.EventQuery{Text: "alpha.org*"}},
		{"RangeAndPrefix", store.EventQuery{From: ms(10), To: ms(50), ActionPrefixes: []string{"user."}}},
		{"ActorIDAndPrefix", store.EventQuery{ActorID: "user_03", ActionPrefixes: []string{"document."}}},
		{"ActorIDAndActions", store.EventQuery{ActorID: "user_02", Actions: []string{"user.signed_in", "user.created", "document.shared"}}},
		{"ActorNameAndTargetType", store.EventQuery{ActorName: "Alice Johnson", TargetType: "team"}},
		{"TargetAndActions", store.EventQuery{TargetType: "document", TargetID: "doc_2", Actions: []string{"document.created", "document.deleted", "document.shared"}}},
		{"TargetTypeAndRange", store.EventQuery{TargetType: "invoice", From: ms(5), To: ms(55)}},
		{"TargetIDAndRange", store.EventQuery{TargetID: "::", From: ms(5), To: ms(55)}},
		{"TargetTypeAndIDAndRange", store.EventQuery{TargetType: "document", TargetID: "doc_3", From: ms(5), To: ms(55)}},
		{"TextAndPrefixAndFrom", store.EventQuery{Text: "bravo", ActionPrefixes: []string{"user."}, From: ms(15)}},
		{"TextAndTarget", store.EventQuery{Text: "charlie", TargetType: "team", TargetID: "team_2"}},
		{"TextAndActorAndTo", store.EventQuery{Text: "delta", ActorID: "user_04", To: ms(40)}},
		{"Everything", store.EventQuery{
			Actions: []string{"user.signed_in", "user.signed_out"}, ActionPrefixes: []string{"team."}, ActorName: "Bob Smith",
			TargetType: "user", From: ms(-3 * 24 * 3600 * 1000), To: ms(50), Text: "203.0.113.7",
		}},
	}
}

func testSearch(t *testing.T, open func(t *testing.T) store.Backend, ix indexing) {
	f := newSearchFixture(t, open(t), ix)
	ctx := ctxOf(t)

	t.Run("Fixture", func(t *testing.T) {
		// The fixture is what the cases need: enough events per organization
		// for many pages, many sharing a millisecond.
		perOrg, perMS := map[string]int{}, map[string]int{}
		for _, e := range f.events {
			perOrg[e.OrganizationID]++
			perMS[e.OrganizationID+e.at.String()]++
		}
		shared := 0
		for _, n := range perMS {
			if n > 1 {
				shared += n
			}
		}
		if perOrg[f.orgs[0]] < 150 || perOrg[f.orgs[2]] < 50 || shared < 200 {
			t.Fatalf("fixture: %v events per organization, %d sharing a millisecond with another of their organization", perOrg, shared)
		}
	})

	for _, c := range searchCases() {
		t.Run(c.name, func(t *testing.T) {
			for _, org := range f.orgs {
				for _, order := range []string{"", store.OrderAsc} {
					q := c.q
					q.OrganizationID, q.Order, q.Limit = org, order, 13
					f.check(t, q)
				}
			}
		})
	}

	t.Run("OrderAndLimits", func(t *testing.T) {
		for _, org := range f.orgs[:2] {
			for _, order := range []string{"", store.OrderDesc, store.OrderAsc} {
				for _, limit := range []int{0, 1, 7, 100} {
					f.check(t, store.EventQuery{OrganizationID: org, Order: order, Limit: limit})
				}
			}
			f.check(t, store.EventQuery{OrganizationID: org, Limit: 2, ActionPrefixes: []string{"user."}, Order: store.OrderAsc})
			f.check(t, store.EventQuery{OrganizationID: org, Limit: 3, Text: "alpha"})
			f.check(t, store.EventQuery{OrganizationID: org, Limit: 4, TargetType: "document", Order: store.OrderAsc})
		}
	})

	t.Run("TiesBrokenBySeq", func(t *testing.T) {
		// The fixture's own check of what "All" walks already covers this;
		// here it is stated directly on a millisecond holding several events.
		var at time.Time
		var org string
		counts := map[string]int{}
		for _, e := range f.events {
			k := e.OrganizationID + "|" + e.at.String()
			if counts[k]++; counts[k] == 4 {
				at, org = e.at, e.OrganizationID
				break
			}
		}
		if org == "" {
			t.Fatalf("no millisecond holds four events of one organization")
		}
		for _, order := range []string{store.OrderAsc, store.OrderDesc} {
			page, err := f.s.SearchEvents(ctx, store.EventQuery{OrganizationID: org, From: at, To: at.Add(time.Millisecond), Order: order, Limit: 100})
			if err != nil {
				t.Fatalf("SearchEvents: %v", err)
			}
			if len(page.Events) < 4 {
				t.Fatalf("%d events in %v, want at least 4", len(page.Events), at)
			}
			sorted := slices.IsSortedFunc(page.Events, func(a, b store.StoredEvent) int { return cmp.Compare(a.Seq, b.Seq) })
			if order == store.OrderDesc {
				sorted = slices.IsSortedFunc(page.Events, func(a, b store.StoredEvent) int { return cmp.Compare(b.Seq, a.Seq) })
			}
			if !sorted {
				t.Errorf("order %s: events of one millisecond in %s, want by seq", order, describe(page.Events))
			}
		}
	})

	t.Run("LimitAbove100", func(t *testing.T) {
		// The contract's limits are 1–100. Above that a store may clamp or
		// fall back to its default; it must never return more than 100.
		want := f.expect(store.EventQuery{OrganizationID: f.orgs[0]})
		for _, limit := range []int{101, 1000} {
			page, err := f.s.SearchEvents(ctx, store.EventQuery{OrganizationID: f.orgs[0], Limit: limit})
			if err != nil {
				continue // refusing it is fine too
			}
			if n := len(page.Events); n < 1 || n > 100 || !samePage(page.Events, want[:n]) || page.After == "" {
				t.Errorf("Limit %d: %d events (%s), after=%q; want the first 1…100 of %d and an after cursor", limit, n, describe(page.Events), page.After, len(want))
			}
		}
	})

	t.Run("TenantIsolation", func(t *testing.T) {
		// "zulu" is only in the second organization's events.
		for i, org := range f.orgs {
			page, err := f.s.SearchEvents(ctx, store.EventQuery{OrganizationID: org, Text: "zulu", Limit: 100})
			if err != nil {
				t.Fatalf("SearchEvents: %v", err)
			}
			if i == 1 && len(page.Events) == 0 {
				t.Errorf("%s: no event matches zulu; the fixture puts it in a third of them", org)
			}
			if i != 1 && len(page.Events) != 0 {
				t.Errorf("%s: %d events match zulu, a word only another organization's events contain", org, len(page.Events))
			}
		}
		for _, q := range []store.EventQuery{
			{OrganizationID: "org_unknown"},
			{OrganizationID: "org_unknown", Text: "alpha"},
			{OrganizationID: "org_unknown", ActionPrefixes: []string{"user."}},
			{OrganizationID: store.SystemOrganizationID},
		} {
			q.Limit = 100
			page, err := f.s.SearchEvents(ctx, q)
			if err != nil || len(page.Events) != 0 || page.Before != "" || page.After != "" {
				t.Errorf("SearchEvents(%+v) = %d events, before=%q after=%q, %v; want an empty page", q, len(page.Events), page.Before, page.After, err)
			}
		}
	})

	t.Run("InvalidCursor", func(t *testing.T) {
		bad := []string{
			"not a cursor", "!!!", "AAAA", "%%", f.orgs[0], f.events[0].ID,
			base64.RawURLEncoding.EncodeToString([]byte("hello, world")),
			base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 0xfd}),
		}
		for _, c := range bad {
			for _, q := range []store.EventQuery{
				{OrganizationID: f.orgs[0], After: c},
				{OrganizationID: f.orgs[0], Before: c},
				{OrganizationID: f.orgs[0], After: c, Text: "alpha", Order: store.OrderAsc},
				{OrganizationID: f.orgs[0], Before: c, ActionPrefixes: []string{"user."}},
			} {
				_, err := f.s.SearchEvents(ctx, q)
				if !errors.Is(err, store.ErrInvalidCursor) {
					t.Errorf("SearchEvents(%+v): error = %v, want ErrInvalidCursor", q, err)
				}
			}
		}
	})
}

// testSearchIndexedBetweenPages walks queries page by page, forward and
// back, with an indexer pass of a few events before every page: events
// move from the not-yet-indexed tail into the index while the walk goes
// on, and it must neither skip nor repeat one.
func testSearchIndexedBetweenPages(t *testing.T, open func(t *testing.T) store.Backend) {
	ms := func(n int) time.Time { return hot.Add(time.Duration(n) * time.Millisecond) }
	for _, c := range []searchCase{
		{"All", store.EventQuery{}},
		{"Range", store.EventQuery{From: ms(20), To: ms(45)}},
		{"ActionPrefix", store.EventQuery{ActionPrefixes: []string{"user."}}},
		{"ActorID", store.EventQuery{ActorID: "user_01"}},
		{"TargetType", store.EventQuery{TargetType: "document"}},
		{"Text", store.EventQuery{Text: "alpha"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, order := range []string{store.OrderDesc, store.OrderAsc} {
				for _, start := range []indexing{indexedNone, indexedPartly} {
					f := newSearchFixture(t, open(t), start)
					rng := rand.New(rand.NewPCG(uint64(len(c.name)), uint64(start)))
					f.between = func() {
						if _, err := f.s.IndexPending(ctxOf(t), 1+rng.IntN(12)); err != nil {
							t.Fatalf("IndexPending: %v", err)
						}
					}
					q := c.q
					q.OrganizationID, q.Order, q.Limit = f.orgs[0], order, 7
					f.check(t, q)
				}
			}
		})
	}
}
