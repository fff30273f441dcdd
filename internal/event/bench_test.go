package event

import (
	"fmt"
	"strings"
	"testing"
)

// benchBody is a realistic event: an actor and two targets with names and
// metadata, a browser user agent, event metadata of each value type.
const benchBody = `{"organization_id":"org_01JDGX3M4C5D6E7F8G9H0J1K2L","event":{"action":"document.shared",` +
	`"occurred_at":"2026-11-25T18:43:09.709Z","version":2,` +
	`"actor":{"id":"user_01JDGX3M4C5D6E7F8G9H0J1K2L","type":"user","name":"Ada Lovelace","metadata":{"role":"admin","seats":12}},` +
	`"targets":[{"id":"doc_01JDGX3M4C5D6E7F8G9H0J1K2L","type":"document","name":"Q4 Financial Plan.xlsx","metadata":{"size_bytes":48213,"folder":"Finance"}},` +
	`{"id":"user_01JDGX3M9Q8R7S6T5V4W3X2Y1Z","type":"user","name":"Grace Hopper"}],` +
	`"context":{"location":"203.0.113.7","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},` +
	`"metadata":{"permission":"edit","notify":true,"expires_in_days":30,"message":"Please review before Friday's board meeting"}}}`

func BenchmarkParseCreate(b *testing.B) {
	body := []byte(benchBody)
	lim := DefaultLimits()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseCreate(body, testNow, lim); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	_, d, err := ParseCreate([]byte(benchBody), testNow, DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	acc := goldenAccepted
	buf := make([]byte, 0, 2048)
	b.SetBytes(int64(len(AppendRecord(nil, acc, d.Tail))))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecord(buf[:0], acc, d.Tail)
	}
}

func BenchmarkParseRecord(b *testing.B) {
	_, d, err := ParseCreate([]byte(benchBody), testNow, DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	rec := AppendRecord(nil, goldenAccepted, d.Tail)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NewID(testNow)
	}
}

// BenchmarkParseUnknownKeys parses events padded with unknown keys: the
// cost per byte must stay flat from 64 KiB to 1 MiB (linear time), which a
// parser that rescans its keys would not.
func BenchmarkParseUnknownKeys(b *testing.B) {
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20} {
		var sb strings.Builder
		sb.WriteString(`{"organization_id":"org_1","event":{`)
		for i := 0; sb.Len() < size; i++ {
			fmt.Fprintf(&sb, `"u%d":0,`, i)
		}
		sb.WriteString(`"u9":1,` + mustJSON(baseEvent())[1:] + `}`)
		body := []byte(sb.String())
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, _, err := ParseCreate(body, testNow, DefaultLimits()); err == nil {
					b.Fatal("an unknown key was accepted")
				}
			}
		})
	}
}
