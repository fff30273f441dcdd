// Package browsertest drives Debian's headless Chromium for the tests of
// Trail's web pages (the Admin Portal and the operator console): a fresh
// browser per test, every step bounded in time so that a hung page fails
// its test instead of hanging it, and the docs' screenshots at laptop and
// phone widths.
package browsertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trailaudit/trail/internal/trailtest"
)

// stepTimeout bounds each Run and Get.
const stepTimeout = 30 * time.Second

// chromium finds Chromium; without it the test fails when
// TRAIL_TEST_REQUIRE_ALL is set (as ./scripts/test sets it) and is
// skipped otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "the browser tests need Debian's chromium (./scripts/test installs it as root)"
	if os.Getenv("TRAIL_TEST_REQUIRE_ALL") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// New starts a headless Chromium with a fresh profile at 1280×900, closed
// at the test's cleanup.
func New(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// Run runs browser steps, failing the test (saying what was being done)
// if one fails or they take longer than 30 s together.
func Run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Get runs one action that returns a value, bounded like Run.
func Get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return Get(t, ctx, expr, chromedp.Evaluate[T](expr))
}

// Visible waits until the element sel selects is visible.
func Visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// Text is the text of the element sel selects.
func Text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return Get(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// Value is the value of the form field sel selects.
func Value(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return Get(t, ctx, "value of "+sel, chromedp.Value(chromedp.CSS(sel)))
}

// Location is the page's URL.
func Location(t *testing.T, ctx context.Context) string {
	t.Helper()
	return Get(t, ctx, "location", chromedp.Location())
}

// Screenshots saves the current page as docs/screenshots/PREFIX-NAME-
// {laptop,phone}.png when TRAIL_UPDATE_SCREENSHOTS is set, and does
// nothing otherwise. Each width reloads the page, as a phone would load it
// (scripts lay pages out by width), unless reload is false: a page that
// answered a POST is not sent again.
func Screenshots(t *testing.T, ctx context.Context, prefix, name string, reload bool) {
	t.Helper()
	if os.Getenv("TRAIL_UPDATE_SCREENSHOTS") == "" {
		return
	}
	dir := filepath.Join(trailtest.ModuleRoot(), "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		suffix        string
		width, height int64
		mobile        bool
	}{{"laptop", 1280, 800, false}, {"phone", 390, 844, true}} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(2)}
		if v.mobile {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
		}
		steps := []chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(v.width, v.height, opts...)}
		if reload {
			steps = append(steps, chromedp.Reload())
		}
		steps = append(steps, Visible("main"), chromedp.Sleep(300*time.Millisecond)) // let the layout settle
		Run(t, ctx, "resize for "+name, steps...)
		png := Get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
		if !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Fatalf("screenshot %s is not a PNG", name)
		}
		if err := os.WriteFile(filepath.Join(dir, prefix+"-"+name+"-"+v.suffix+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Run(t, ctx, "back to the laptop width", chromedp.EmulateViewport(1280, 900))
}
