package witness

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"sigsum.org/sigsum-go/pkg/api"
	sigsumclient "sigsum.org/sigsum-go/pkg/client"
	"sigsum.org/sigsum-go/pkg/crypto"
	"sigsum.org/sigsum-go/pkg/requests"
	"sigsum.org/sigsum-go/pkg/types"

	"github.com/trailaudit/trail/internal/ledger"
)

// The protocol is the standard, not only Trail's: Trail's witness answers
// an independent client (sigsum-go's), its cosignatures verify with
// independent code (sigsum-go's and torchwood's), and Trail's log side
// gets cosignatures from an independent witness (torchwood's litewitness).

// sigsumRequest is the add-checkpoint request of l's checkpoint of size,
// as sigsum-go builds it. Sigsum names the log key after the origin.
func sigsumRequest(t *testing.T, l *testLog, oldSize, size int64) requests.AddCheckpoint {
	t.Helper()
	msg := l.checkpoint(t, size)
	_, sigs, err := splitNote(msg)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(sigs))
	raw, err := base64.StdEncoding.DecodeString(f[2])
	if err != nil || len(raw) != 4+ed25519.SignatureSize {
		t.Fatalf("log signature line %q", sigs)
	}
	var req requests.AddCheckpoint
	req.OldSize = uint64(oldSize)
	for _, h := range l.tree.proof(t, oldSize, size) {
		req.Proof.Path = append(req.Proof.Path, crypto.Hash(h))
	}
	req.Checkpoint.Origin = l.origin
	copy(req.Checkpoint.KeyId[:], raw[:4])
	copy(req.Checkpoint.Signature[:], raw[4:])
	req.Checkpoint.TreeHead = types.TreeHead{Size: uint64(size), RootHash: crypto.Hash(l.tree.root(t, size))}
	return req
}

func TestInteropSigsumClient(t *testing.T) {
	const origin = "trail.test/org_sigsum"
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{signer: signer, origin: origin}
	l.tree.add(t, "a", 40)

	ws := newTestSigner(t, "witness.example/trail")
	srv, err := OpenServer(t.TempDir(), ws, []LogConfig{{Origin: "trail.test", Prefix: true, Verifier: signer.Verifier()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	cli := sigsumclient.New(sigsumclient.Config{URL: hs.URL})
	var witnessPub crypto.PublicKey
	copy(witnessPub[:], ws.Verifier().pub)
	tw, err := torchwood.NewCosignatureSigner("witness.example/trail", ed25519.NewKeyFromSeed(ws.priv.Seed()))
	if err != nil {
		t.Fatal(err)
	}
	torchwoodVerifier := tw.Verifier()
	if torchwoodVerifier.String() != ws.Verifier().String() {
		t.Fatalf("verifier keys differ: torchwood %s, Trail %s", torchwoodVerifier, ws.Verifier())
	}

	ctx := context.Background()
	steps := []struct {
		name       string
		old, size  int64
		conflictAt int64 // > 0: expect a 409 naming this size
	}{
		{"first", 0, 10, 0},
		{"stale old size", 0, 20, 10},
		{"consistent", 10, 20, 0},
		{"consistent again", 20, 40, 0},
	}
	for _, s := range steps {
		req := sigsumRequest(t, l, s.old, s.size)
		lines, err := cli.AddCheckpoint(ctx, req)
		if s.conflictAt > 0 {
			got, ok := api.ErrorConflictOldSize(err)
			if !ok || int64(got) != s.conflictAt {
				t.Fatalf("%s: err %v, want a 409 naming %d", s.name, err, s.conflictAt)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		// sigsum-go verifies the cosignature with its own code.
		if _, err := req.Checkpoint.VerifyCosignatureByKey(lines, &witnessPub); err != nil {
			t.Fatalf("%s: sigsum-go rejects Trail's cosignature: %v", s.name, err)
		}
		// So does torchwood, on the checkpoint note with the line appended.
		msg := l.checkpoint(t, s.size)
		for _, line := range lines {
			var b strings.Builder
			if err := line.ToASCII(&b); err != nil {
				t.Fatal(err)
			}
			msg = append(msg, b.String()...)
		}
		if _, err := note.Open(msg, note.VerifierList(torchwoodVerifier)); err != nil {
			t.Fatalf("%s: torchwood rejects Trail's cosignature: %v", s.name, err)
		}
	}

	// And Trail verifies torchwood's cosignatures.
	msg := l.checkpoint(t, 40)
	signed, err := note.Sign(&note.Note{Text: string(msg[:strings.Index(string(msg), "\n\n")+1])}, tw)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := CheckCosignatures(signed, []*Verifier{ws.Verifier()})
	if len(good) != 1 || len(bad) != 0 {
		t.Fatalf("Trail does not verify torchwood's cosignature: good %v, bad %v", good, bad)
	}
}

// litewitness is torchwood's witness server (filippo.io/torchwood v0.6.1,
// cmd/litewitness), run as a process with its key in an ssh-agent.
type litewitness struct {
	url  string
	vkey string
	db   string
	bin  string
}

var torchwoodBins struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// installTorchwood builds litewitness and witnessctl once per test run.
func installTorchwood(t *testing.T) string {
	t.Helper()
	torchwoodBins.once.Do(func() {
		dir, err := os.MkdirTemp("", "torchwood-bin-")
		if err != nil {
			torchwoodBins.err = err
			return
		}
		cmd := exec.Command("go", "install", "filippo.io/torchwood/cmd/litewitness@v0.6.1", "filippo.io/torchwood/cmd/witnessctl@v0.6.1")
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		cmd.Dir = dir
		torchwoodBins.out, torchwoodBins.err = cmd.CombinedOutput()
		torchwoodBins.dir = dir
	})
	if torchwoodBins.err != nil {
		t.Fatalf("couldn't build torchwood's litewitness: %v\n%s", torchwoodBins.err, torchwoodBins.out)
	}
	return torchwoodBins.dir
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startLitewitness runs litewitness configured for origins with logKey.
func startLitewitness(t *testing.T, logKey string, origins ...string) *litewitness {
	t.Helper()
	bin := installTorchwood(t)
	for _, tool := range []string{"ssh-agent", "ssh-add", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run torchwood's litewitness: %v", tool, err)
		}
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	waitFor(t, "ssh-agent", func() bool { _, err := os.Stat(sock); return err == nil })
	key := filepath.Join(dir, "witness")
	run(t, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", key)
	run(t, []string{"SSH_AUTH_SOCK=" + sock}, "ssh-add", key)
	fp := strings.Fields(run(t, nil, "ssh-keygen", "-l", "-E", "sha256", "-f", key+".pub"))[1]

	db := filepath.Join(dir, "litewitness.db")
	for _, o := range origins {
		run(t, nil, filepath.Join(bin, "witnessctl"), "add-log", "-db", db, "-origin", o)
		run(t, nil, filepath.Join(bin, "witnessctl"), "add-key", "-db", db, "-origin", o, "-key", logKey)
	}
	addr := freeAddr(t)
	cmd := exec.Command(filepath.Join(bin, "litewitness"), "-name", "litewitness.example", "-db", db,
		"-ssh-agent", sock, "-key", fp, "-listen", addr)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	vkeyRE := regexp.MustCompile(`vkey=(\S+)`)
	lw := &litewitness{url: "http://" + addr, db: db, bin: bin}
	vkeys := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log("litewitness: " + sc.Text())
			if m := vkeyRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case vkeys <- strings.Trim(m[1], `"`):
				default:
				}
			}
		}
	}()
	select {
	case lw.vkey = <-vkeys:
	case <-time.After(time.Minute):
		t.Fatal("litewitness printed no verifier key")
	}
	waitFor(t, "litewitness listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return lw
}

// TestInteropTorchwoodWitness: Trail's log side gets cosignatures from
// torchwood's witness, through consistency proofs, and a fork is caught by
// it as by Trail's own witness.
func TestInteropTorchwoodWitness(t *testing.T) {
	signer := newLogSigner(t)
	lw := startLitewitness(t, signer.VerifierKey(), testPrefix+"/org_a")
	v, err := ParseVerifierKey(lw.vkey)
	if err != nil {
		t.Fatalf("litewitness's key: %v", err)
	}
	witnesses := []Config{{URL: lw.url, Verifier: v}}
	st := newMemStorage()
	dir := t.TempDir()
	ls := startLog(t, st, signer, dir, witnesses, 1)
	total := int64(0)
	for _, n := range []int{1, 6, 300, 17} {
		addRecords(st, "org_a", "a", n)
		total += int64(n)
		ls.in.Wake()
		waitFor(t, "litewitness's cosignature", func() bool {
			size, names := cosigners(t, ls, "org_a", &testWitness{config: witnesses[0]})
			return size == total && len(names) == 1
		})
	}
	// The restore of an older copy, then a different history.
	ls.stop()
	backup := st.Clone()
	backupDir := t.TempDir()
	copyDir(t, dir, backupDir)
	ls = startLog(t, st, signer, dir, witnesses, 1)
	addRecords(st, "org_a", "a", 10)
	ls.in.Wake()
	waitFor(t, "cosigned after 10 more", func() bool {
		size, names := cosigners(t, ls, "org_a", &testWitness{config: witnesses[0]})
		return size == total+10 && len(names) == 1
	})
	ls.stop()
	ls = startLog(t, backup, signer, backupDir, witnesses, 1)
	addRecords(backup, "org_a", "forked", 20)
	ls.in.Wake()
	waitFor(t, "the fork reported", func() bool { return ls.forked("org_a") != "" })
}
