package stream

import "net/http"

// OpenWithClient opens a destination whose HTTP requests go through
// client (tests: a transport that sends every host name to a local server).
func (c *Codec) OpenWithClient(s *Settings, client *http.Client) (Destination, error) {
	e := c.env()
	return s.dest.open(&env{policy: e.policy, client: client, now: e.now})
}
