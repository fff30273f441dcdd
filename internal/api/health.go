package api

import (
	"context"
	"net/http"
	"net/http/pprof"
)

var statusOK = []byte(`{"status":"ok"}`)

// healthz answers 200 while the process can serve HTTP at all.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeRawJSON(w, http.StatusOK, statusOK)
	return nil
}

// readiness is what /readyz answers: 200 once SetReady(true) was called
// (the store is open and the background workers run) and while every log
// can be signed; 503 before that, while shutting down, while the stored
// logs are still being checked against the checkpoints this server signed,
// while any organization's log is refused (its events are refused too,
// so a load balancer should not count this server as healthy), while
// Config.Unready names a problem of this replica (its database
// unreachable, its disk short, a lease it cannot renew), and from Drain on.
// verbose adds which organizations, which problems and why; only the
// operator listener says that, since organization ids and database errors
// are not for anonymous callers.
func (s *Server) readiness(ctx context.Context, verbose bool) (int, any) {
	if s.draining.Load() {
		return http.StatusServiceUnavailable, &apiError{status: http.StatusServiceUnavailable, code: "shutting_down",
			message: "This Trail server is shutting down; send requests to another one.", retryAfter: 1}
	}
	if !s.ready.Load() {
		return http.StatusServiceUnavailable, &apiError{status: http.StatusServiceUnavailable, code: "not_ready",
			message: "Trail is starting or shutting down and does not take requests yet; retry shortly.", retryAfter: 1}
	}
	if s.cfg.Log.Checked != nil && !s.cfg.Log.Checked() {
		return http.StatusServiceUnavailable, &apiError{status: http.StatusServiceUnavailable, code: "not_ready",
			message: "Trail is checking its stored logs against the checkpoints it signed; retry shortly.", retryAfter: 1}
	}
	if s.cfg.Unready != nil {
		if problems := s.cfg.Unready(ctx); len(problems) > 0 {
			body := map[string]any{"status": "unavailable",
				"message": "This Trail server cannot do its work now (its operator listener's /readyz says why); retry on another one."}
			if verbose {
				body["problems"] = problems
			}
			return http.StatusServiceUnavailable, body
		}
	}
	if s.cfg.Log.Refused != nil {
		if refused := s.cfg.Log.Refused(); len(refused) > 0 {
			body := map[string]any{"status": "degraded",
				"message": "Trail refuses events for some organizations because the database disagrees with checkpoints it already signed; see the server log."}
			if verbose {
				body["log_refused"] = refused
			}
			return http.StatusServiceUnavailable, body
		}
	}
	if s.cfg.Log.WitnessesDown != nil {
		if down := s.cfg.Log.WitnessesDown(); len(down) > 0 {
			body := map[string]any{"status": "degraded",
				"message": "Some witnesses do not answer: checkpoints are published without their cosignatures until they do; events are accepted as usual."}
			if verbose {
				body["witnesses_down"] = down
			}
			return http.StatusOK, body
		}
	}
	return http.StatusOK, nil
}

// readyz is the public readiness check: its status and nothing more.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	s.writeReadiness(w, r, false)
	return nil
}

// operatorReadyz is /readyz on the operator listener: with the details.
func (s *Server) operatorReadyz(w http.ResponseWriter, r *http.Request) {
	s.writeReadiness(w, r, true)
}

func (s *Server) writeReadiness(w http.ResponseWriter, r *http.Request, verbose bool) {
	code, body := s.readiness(r.Context(), verbose)
	switch b := body.(type) {
	case nil:
		writeRawJSON(w, http.StatusOK, statusOK)
	case *apiError:
		writeAPIError(w, b)
	default:
		writeJSON(w, code, b)
	}
}

// OperatorHandler serves what is for the deployment's operators only, on a
// listener of its own (trail serve --metrics-listen, loopback by default):
// /metrics (fleet aggregates; nothing labelled per tenant), /readyz with the
// organizations it is degraded for, /healthz, and with pprof the Go
// profiler under /debug/pprof/. None of it is on the public listener.
func (s *Server) OperatorHandler(withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler)
	mux.HandleFunc("GET /readyz", s.operatorReadyz)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeRawJSON(w, http.StatusOK, statusOK)
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
