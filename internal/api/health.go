package api

import "net/http"

var statusOK = []byte(`{"status":"ok"}`)

// healthz answers 200 while the process can serve HTTP at all.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeRawJSON(w, http.StatusOK, statusOK)
	return nil
}

// readyz answers 200 once SetReady(true) was called (the store is open and
// the background workers run), 503 before that and while shutting down, so
// a load balancer sends traffic only to a replica that can take it.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if !s.ready.Load() {
		return &apiError{status: http.StatusServiceUnavailable, code: "not_ready",
			message: "Trail is starting or shutting down and does not take requests yet; retry shortly.", retryAfter: 1}
	}
	if s.cfg.Log.Refused != nil {
		if refused := s.cfg.Log.Refused(); len(refused) > 0 {
			// Still ready: ingest and queries work, and every replica
			// shares the database, so taking this one out of rotation
			// would not help. The body says what needs an operator.
			writeJSON(w, http.StatusOK, map[string]any{"status": "degraded", "log_refused": refused,
				"message": "Trail refuses to sign checkpoints for these organizations because the database disagrees with checkpoints it already signed; see the server log."})
			return nil
		}
	}
	writeRawJSON(w, http.StatusOK, statusOK)
	return nil
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	s.metricsHandler.ServeHTTP(w, r)
	return nil
}
