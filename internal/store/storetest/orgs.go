package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

func testOrganizations(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("CreateAndGet", func(t *testing.T) {
		s := open(t)
		ctx := ctxOf(t)
		want := store.Organization{ID: orgID("G", 1), Name: "Acme, Inc. — ünïcode", ExternalID: "acme-42", CreatedAt: t0, UpdatedAt: t0.Add(time.Second)}
		if err := s.CreateOrganization(ctx, want); err != nil {
			t.Fatalf("CreateOrganization: %v", err)
		}
		got, err := s.Organization(ctx, want.ID)
		if err != nil {
			t.Fatalf("Organization(%s): %v", want.ID, err)
		}
		checkOrg(t, got, want)

		// No external id: stored as unset, and any number of organizations may lack one.
		for i := 2; i <= 3; i++ {
			o := store.Organization{ID: orgID("G", i), Name: "No external id", CreatedAt: t0, UpdatedAt: t0}
			if err := s.CreateOrganization(ctx, o); err != nil {
				t.Fatalf("CreateOrganization(%s) without external id: %v", o.ID, err)
			}
			got, err := s.Organization(ctx, o.ID)
			if err != nil {
				t.Fatalf("Organization(%s): %v", o.ID, err)
			}
			checkOrg(t, got, o)
		}

		// By external id; organizations without one are never found by "".
		got, err = s.OrganizationByExternalID(ctx, want.ExternalID)
		if err != nil {
			t.Fatalf("OrganizationByExternalID(%q): %v", want.ExternalID, err)
		}
		checkOrg(t, got, want)
		for _, ext := range []string{"", "acme-4", "ACME-42", "org_unknown", "acme-42\x00"} {
			_, err := s.OrganizationByExternalID(ctx, ext)
			wantErr(t, fmt.Sprintf("OrganizationByExternalID(%q)", ext), err, store.ErrNotFound)
		}

		// A new organization has an empty log.
		if n, err := s.NextSeq(ctx, want.ID); err != nil || n != 0 {
			t.Errorf("NextSeq of a new organization = %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		_, err := s.Organization(ctxOf(t), "org_does_not_exist")
		wantErr(t, "Organization(unknown)", err, store.ErrNotFound)
	})

	t.Run("Conflicts", func(t *testing.T) {
		s := open(t)
		ctx := ctxOf(t)
		first := store.Organization{ID: orgID("C", 1), Name: "First", ExternalID: "ext-1", CreatedAt: t0, UpdatedAt: t0}
		if err := s.CreateOrganization(ctx, first); err != nil {
			t.Fatalf("CreateOrganization: %v", err)
		}
		for _, c := range []struct {
			name string
			org  store.Organization
		}{
			{"same id", store.Organization{ID: first.ID, Name: "Second", CreatedAt: t0, UpdatedAt: t0}},
			{"same external id", store.Organization{ID: orgID("C", 2), Name: "Second", ExternalID: "ext-1", CreatedAt: t0, UpdatedAt: t0}},
			{"system id", store.Organization{ID: store.SystemOrganizationID, Name: "Impostor", CreatedAt: t0, UpdatedAt: t0}},
		} {
			err := s.CreateOrganization(ctx, c.org)
			wantErr(t, "CreateOrganization with "+c.name, err, store.ErrConflict)
		}
		// The conflicts changed nothing.
		got, err := s.Organization(ctx, first.ID)
		if err != nil {
			t.Fatalf("Organization: %v", err)
		}
		checkOrg(t, got, first)
		if _, err := s.Organization(ctx, orgID("C", 2)); err == nil {
			t.Errorf("an organization rejected for its external id was stored")
		}
	})

	t.Run("SystemOrganization", func(t *testing.T) {
		s := open(t)
		ctx := ctxOf(t)
		o, err := s.Organization(ctx, store.SystemOrganizationID)
		if err != nil {
			t.Fatalf("Organization(%s): %v (the first migration must create it)", store.SystemOrganizationID, err)
		}
		if o.ID != store.SystemOrganizationID || o.Name == "" {
			t.Errorf("system organization = %+v", o)
		}
		if n, err := s.NextSeq(ctx, store.SystemOrganizationID); err != nil || n != 0 {
			t.Errorf("NextSeq(system) on a fresh store = %d, %v; want 0, nil", n, err)
		}
		page, err := s.ListOrganizations(ctx, store.ListParams{Limit: 100})
		if err != nil {
			t.Fatalf("ListOrganizations: %v", err)
		}
		if len(page.Data) != 0 || page.Before != "" || page.After != "" {
			t.Errorf("ListOrganizations on a fresh store = %+v, want nothing (the system organization is hidden)", page)
		}
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		const n = 23
		var ids []string
		for i := range n {
			// Created in id order, a millisecond apart, as ULIDs would be.
			ids = append(ids, mustCreateOrg(t, s, orgID("L", i), t0.Add(time.Duration(i)*time.Millisecond)).ID)
		}
		list := func(p store.ListParams) (store.ListPage[store.Organization], error) {
			return s.ListOrganizations(ctxOf(t), p)
		}
		id := func(o store.Organization) string { return o.ID }
		for _, c := range listCases {
			t.Run(c.name, func(t *testing.T) { checkList(t, list, id, ids, c.order, c.limit) })
		}
		t.Run("Fields", func(t *testing.T) {
			page, err := list(store.ListParams{Order: store.OrderAsc, Limit: 1})
			if err != nil || len(page.Data) != 1 {
				t.Fatalf("ListOrganizations = %+v, %v", page, err)
			}
			checkOrg(t, page.Data[0], store.Organization{ID: ids[0], Name: "Org " + ids[0], CreatedAt: t0, UpdatedAt: t0})
		})
	})
}

func checkOrg(t *testing.T, got, want store.Organization) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.ExternalID != want.ExternalID ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.UpdatedAt, want.UpdatedAt) {
		t.Errorf("organization = %+v\nwant %+v", got, want)
	}
}

// listCases are the pagination walks every list runs.
var listCases = []struct {
	name  string
	order string
	limit int
}{
	{"DefaultOrderDefaultLimit", "", 0},
	{"Desc5", store.OrderDesc, 5},
	{"Asc5", store.OrderAsc, 5},
	{"Asc1", store.OrderAsc, 1},
	{"Desc7", store.OrderDesc, 7},
	{"AscAllInOnePage", store.OrderAsc, 100},
	{"DescExactlyAll", store.OrderDesc, -1}, // -1: the limit is the number of items
}

// checkList walks a WorkOS-style list forward with After and back with
// Before and checks every page and cursor. all is every item's id in
// ascending order. In WorkOS lists, list_metadata.after is the id of the
// page's last item when more items follow, and before the id of its first
// item when items precede; "" otherwise. The default order is desc and the
// default limit 10.
func checkList[T any](t *testing.T, list func(store.ListParams) (store.ListPage[T], error), idOf func(T) string, all []string, order string, limit int) {
	t.Helper()
	if limit == -1 {
		limit = len(all)
	}
	want := all
	if order != store.OrderAsc {
		want = reversed(all)
	}
	pageSize := limit
	if pageSize == 0 {
		pageSize = 10
	}
	ids := func(p store.ListPage[T]) []string {
		out := make([]string, len(p.Data))
		for i, v := range p.Data {
			out[i] = idOf(v)
		}
		return out
	}

	// Forward: the pages are want cut every pageSize items.
	var pages []store.ListPage[T]
	p := store.ListParams{Order: order, Limit: limit}
	for i := 0; ; i++ {
		page, err := list(p)
		if err != nil {
			t.Fatalf("forward page %d (%+v): %v", i, p, err)
		}
		lo, hi := i*pageSize, min((i+1)*pageSize, len(want))
		if got := ids(page); !slices.Equal(got, want[lo:hi]) {
			t.Fatalf("forward page %d (%+v) = %v, want %v", i, p, got, want[lo:hi])
		}
		wantBefore, wantAfter := "", ""
		if i > 0 {
			wantBefore = want[lo]
		}
		if hi < len(want) {
			wantAfter = want[hi-1]
		}
		if page.Before != wantBefore || page.After != wantAfter {
			t.Fatalf("forward page %d (%+v): list_metadata before=%q after=%q, want before=%q after=%q",
				i, p, page.Before, page.After, wantBefore, wantAfter)
		}
		pages = append(pages, page)
		if page.After == "" {
			break
		}
		if i > len(want) {
			t.Fatalf("forward walk does not end")
		}
		p = store.ListParams{Order: order, Limit: limit, After: page.After}
	}

	// Backward from every forward page's before cursor: the page before it.
	for i := 1; i < len(pages); i++ {
		p := store.ListParams{Order: order, Limit: limit, Before: pages[i].Before}
		page, err := list(p)
		if err != nil {
			t.Fatalf("backward from page %d (%+v): %v", i, p, err)
		}
		if got, want := ids(page), ids(pages[i-1]); !slices.Equal(got, want) {
			t.Fatalf("backward from page %d (%+v) = %v, want %v", i, p, got, want)
		}
		wantBefore := ""
		if i-1 > 0 {
			wantBefore = ids(pages[i-1])[0]
		}
		wantAfter := ids(pages[i-1])[len(pages[i-1].Data)-1]
		if page.Before != wantBefore || page.After != wantAfter {
			t.Fatalf("backward from page %d (%+v): list_metadata before=%q after=%q, want before=%q after=%q",
				i, p, page.Before, page.After, wantBefore, wantAfter)
		}
	}

	// Backward walk from the end: Before the last item gives the pageSize
	// items before it, and so on to the start.
	if len(want) < 2 {
		return
	}
	end := len(want) - 1
	p = store.ListParams{Order: order, Limit: limit, Before: want[end]}
	for i := 0; ; i++ {
		page, err := list(p)
		if err != nil {
			t.Fatalf("backward walk page %d (%+v): %v", i, p, err)
		}
		lo := max(0, end-pageSize)
		if got := ids(page); !slices.Equal(got, want[lo:end]) {
			t.Fatalf("backward walk page %d (%+v) = %v, want %v", i, p, got, want[lo:end])
		}
		wantBefore := ""
		if lo > 0 {
			wantBefore = want[lo]
		}
		if page.Before != wantBefore || page.After != want[end-1] {
			t.Fatalf("backward walk page %d (%+v): list_metadata before=%q after=%q, want before=%q after=%q",
				i, p, page.Before, page.After, wantBefore, want[end-1])
		}
		if page.Before == "" {
			break
		}
		end = lo
		p = store.ListParams{Order: order, Limit: limit, Before: page.Before}
	}
}
