package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/trailaudit/trail/client"
)

// fakeTrail answers like Trail for the examples: events are accepted,
// searches answer two pages, and an event without actor id is refused.
func fakeTrail() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /audit_logs/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-ID", "req_123")
		if r.Header.Get("Idempotency-Key") == "" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprint(w, `{"message":"Validation failed.","errors":[{"code":"required","field":"event.actor.id","message":"must be a non-empty string"}]}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"success":true}`)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("after") == "" {
			fmt.Fprint(w, `{"object":"list","data":[{"id":"evt_2","organization_id":"org_1","seq":1,"action":"user.signed_in"}],"list_metadata":{"before":null,"after":"c1"}}`)
			return
		}
		fmt.Fprint(w, `{"object":"list","data":[{"id":"evt_1","organization_id":"org_1","seq":0,"action":"user.signed_in"}],"list_metadata":{"before":"c0","after":null}}`)
	})
	return httptest.NewServer(mux)
}

func ExampleClient_CreateEvent() {
	srv := fakeTrail()
	defer srv.Close()
	c, err := client.New(srv.URL, "sk_example")
	if err != nil {
		panic(err)
	}
	err = c.CreateEvent(context.Background(), "org_1", client.Event{
		Action:     "user.signed_in",
		OccurredAt: time.Now(),
		Actor:      client.Entity{Type: "user", ID: "user_1"},
		Context:    client.EventContext{Location: "192.0.2.1"},
	}, client.IdempotencyKey("signin-user_1-1"))
	fmt.Println(err)
	// Output: <nil>
}

func ExampleClient_Events() {
	srv := fakeTrail()
	defer srv.Close()
	c, _ := client.New(srv.URL, "sk_example")
	q := client.EventQuery{OrganizationID: "org_1", Actions: []string{"user.*"}}
	for ev, err := range c.Events(context.Background(), q) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(ev.Seq, ev.ID, ev.Action)
	}
	// Output:
	// 1 evt_2 user.signed_in
	// 0 evt_1 user.signed_in
}

func ExampleError() {
	srv := fakeTrail()
	defer srv.Close()
	c, _ := client.New(srv.URL, "sk_example")
	err := c.CreateEvent(context.Background(), "org_1", client.Event{Action: "user.signed_in"})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.StatusCode, e.RequestID, e.Retryable())
		for _, fe := range e.Errors {
			fmt.Println(fe.Field, fe.Code)
		}
	}
	// Output:
	// 422 req_123 false
	// event.actor.id required
}

func ExamplePublisher() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"data":[]}`)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL, "sk_example")
	p, err := client.NewPublisher(c, client.PublisherOptions{
		SpoolDir: filepath.Join(os.TempDir(), fmt.Sprintf("trail-spool-example-%d", os.Getpid())),
		Sync:     client.SyncEveryBatch,
	})
	if err != nil {
		panic(err)
	}
	for i := range 3 {
		// Returns once the event is on disk; never waits for Trail.
		err := p.Publish(context.Background(), "org_1", client.Event{
			Action:     "user.signed_in",
			OccurredAt: time.Now(),
			Actor:      client.Entity{Type: "user", ID: fmt.Sprint("user_", i)},
			Context:    client.EventContext{Location: "192.0.2.1"},
		})
		if err != nil {
			fmt.Println(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		fmt.Println(err)
	}
	st := p.Stats()
	fmt.Println(st.Published, st.Delivered)
	os.RemoveAll(filepath.Join(os.TempDir(), fmt.Sprintf("trail-spool-example-%d", os.Getpid())))
	// Output: 3 3
}
