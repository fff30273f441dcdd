package lease_test

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// proxy forwards TCP connections to a PostgreSQL server and can freeze
// them: while frozen nothing passes either way, as for a process stopped
// with SIGSTOP or a network partition, and no error reaches the client.
type proxy struct {
	dsn    string
	mu     sync.Mutex
	frozen bool
	thawed *sync.Cond
}

func newProxy(t *testing.T, dsn string) *proxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u.Host = ln.Addr().String()
	p := &proxy{dsn: u.String()}
	p.thawed = sync.NewCond(&p.mu)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

// pipe copies from src to dst chunk by chunk, holding each chunk while
// the proxy is frozen.
func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.frozen {
				p.thawed.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection: the other side closes too
		}
	}
}

func (p *proxy) freeze() { p.mu.Lock(); p.frozen = true; p.mu.Unlock() }

func (p *proxy) thaw() {
	p.mu.Lock()
	p.frozen = false
	p.mu.Unlock()
	p.thawed.Broadcast()
}
