package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run(t.Context(), []string{"version"}, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	for _, want := range []string{"trail ", "revision ", "built with go"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("trail version printed %q; want it to contain %q", out.String(), want)
		}
	}
}

func TestBuildInfoGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfoGauge(buildInfo{Version: "v1.2.3", Revision: "abc", Modified: true, GoVersion: "go1.26"}))
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "trail_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("Gather = %v, %v", mfs, err)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"version": "v1.2.3", "revision": "abc-modified", "goversion": "go1.26"}
	if m.GetGauge().GetValue() != 1 || len(labels) != len(want) {
		t.Fatalf("trail_build_info = %v %v", m.GetGauge().GetValue(), labels)
	}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
}
