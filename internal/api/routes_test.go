package api

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestRouteTableMatchesDocs checks the route table in docs/API.md against
// the server's mux with every feature configured: the same routes, each
// with the scope the server requires.
func TestRouteTableMatchesDocs(t *testing.T) {
	e := newEnv(t, withEverything(t))
	documented := readRouteTable(t, "../../docs/API.md")
	var missing, extra, wrong []string
	for pattern, scope := range e.srv.patterns {
		doc, ok := documented[pattern]
		switch {
		case !ok:
			missing = append(missing, pattern)
		case doc != docScope(scope):
			wrong = append(wrong, pattern+": docs say "+doc+", the server requires "+docScope(scope))
		}
	}
	for pattern := range documented {
		if _, ok := e.srv.patterns[pattern]; !ok {
			extra = append(extra, pattern)
		}
	}
	for _, l := range []struct {
		what string
		list []string
	}{
		{"registered but not in docs/API.md", missing},
		{"in docs/API.md but not registered", extra},
		{"with another scope in docs/API.md", wrong},
	} {
		slices.Sort(l.list)
		for _, p := range l.list {
			t.Errorf("route %s %s", l.what, p)
		}
	}
	if len(documented) == 0 {
		t.Fatal("docs/API.md has no route table")
	}
}

// docScope is how docs/API.md names a route's scope.
func docScope(scope string) string {
	switch scope {
	case anyScope:
		return "checked by the handler"
	case publicRoute:
		return "none"
	}
	return scope
}

// readRouteTable reads the rows "| `METHOD` | `path` | scope | …" of the
// route table in the file at path, keyed by their ServeMux pattern.
func readRouteTable(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	routes := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(sc.Text(), "|")
		if len(cells) < 5 || strings.TrimSpace(cells[0]) != "" {
			continue
		}
		method := strings.Trim(strings.TrimSpace(cells[1]), "`")
		route := strings.Trim(strings.TrimSpace(cells[2]), "`")
		if !strings.HasPrefix(route, "/") {
			continue // the header and its rule
		}
		pattern := route
		if method != "any" {
			pattern = method + " " + route
		}
		if _, dup := routes[pattern]; dup {
			t.Errorf("%s lists %s twice", path, pattern)
		}
		routes[pattern] = strings.TrimSpace(cells[3])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return routes
}
