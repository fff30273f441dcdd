package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/streamadmin"
)

// newPortal builds the Admin Portal for `trail serve` and starts the
// cleanup of expired links under ctx. The portal manages log streams with
// the API's rules (streams) and records its admins' actions with the
// API's recorder (audit). exports (nil: none) serves the events page's CSV
// export; tail the live view; archived (nil: no archive) where older
// events live; pf the brand and embedding.
func newPortal(ctx context.Context, st store.Backend, signing *deploymentKeys, keys *keyring.Keyring, publicURL string,
	logger *slog.Logger, streams *streamadmin.Manager, audit *selfaudit.Recorder, exports portal.Exports, ls ledger.Storage,
	witnesses portal.Witnesses, tail portal.Tail, archived func(context.Context, string) (portal.ArchivedEvents, bool), pf portalFlags) (api.PortalConfig, error) {
	look, err := pf.options()
	if err != nil {
		return api.PortalConfig{}, usageError{err}
	}
	p, err := portal.New(portal.Config{
		Brand:        look.brand,
		VendorName:   look.vendorName,
		FrameOrigins: look.frameOrigins,
		Schemas:      st,
		Store:        st, Ledger: ls, VerifierKey: signing.NewestKey(), Keys: signing.History, BaseURL: publicURL,
		SessionKey: keys.Key("trail portal sessions v1"),
		Logger:     logger.With("component", "portal"),
		Exports:    exports,
		Witnesses:  witnesses,
		Tail:       tail,
		Streams:    streams,
		Audit:      audit.RecordPortal,
		Archived:   archived,
	})
	if err != nil {
		return api.PortalConfig{}, usagef("%v (set --public-url to the URL admins reach this server at, e.g. https://trail.example.com)", err)
	}
	go deletePortalLinks(ctx, st, logger)
	return api.PortalConfig{Handler: p, Links: p, Settings: st}, nil
}

// deletePortalLinks forgets portal links a day after they expired. A link's
// row also says whether the session it opened has ended, and that session
// lasts 12 hours from a use within the link's 5 minutes: a day later it is
// over, and a session whose row is gone is refused anyway.
func deletePortalLinks(ctx context.Context, st store.PortalLinks, logger *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := st.DeletePortalLinks(ctx, time.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
			logger.Warn("couldn't delete expired portal links", "err", err)
		} else if n > 0 {
			logger.Debug("deleted expired portal links", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// portalFlags are `trail serve`'s settings of the Admin Portal's look and
// embedding (docs/PORTAL.md, docs/EMBEDDING.md); each organization may
// override them (store.PortalSettings).
type portalFlags struct {
	vendorName   string
	productName  string
	logoFile     string
	accent       string
	frameOrigins string
}

func (f *portalFlags) register(fs *flag.FlagSet) {
	setting{fs}.StringVar(&f.vendorName, "vendor-name", "TRAIL_VENDOR_NAME", "", "your company or product as your customers know it: the Admin Portal shows Trail's own events done with your API keys, console or command line as done by this name, without key ids or addresses (default: \"The application's provider\")")
	setting{fs}.StringVar(&f.productName, "portal-product-name", "TRAIL_PORTAL_PRODUCT_NAME", "", "the name the Admin Portal's header and titles show (default: Audit log)")
	setting{fs}.StringVar(&f.logoFile, "portal-logo-file", "TRAIL_PORTAL_LOGO_FILE", "", "a PNG, JPEG, WebP or SVG file (at most 256 KiB) the Admin Portal's header shows in place of Trail's")
	setting{fs}.StringVar(&f.accent, "portal-accent", "TRAIL_PORTAL_ACCENT", "", "the Admin Portal's accent colour, #RRGGBB: links, buttons and the histogram (adjusted until it reads at a WCAG contrast of 4.5:1 in both themes)")
	setting{fs}.StringVar(&f.frameOrigins, "portal-frame-origins", "TRAIL_PORTAL_FRAME_ORIGINS", "", "space- or comma-separated origins (https://app.example.com) whose pages may show the Admin Portal in an iframe; empty: none may (docs/EMBEDDING.md)")
}

// portalLook is what the flags say, checked.
type portalLook struct {
	brand        portal.Brand
	vendorName   string
	frameOrigins []string
}

func (f *portalFlags) options() (portalLook, error) {
	out := portalLook{brand: portal.Brand{ProductName: strings.TrimSpace(f.productName), Accent: f.accent},
		vendorName: strings.TrimSpace(f.vendorName)}
	if n := len([]rune(out.vendorName)); n > portal.MaxProductName || strings.ContainsFunc(out.vendorName, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return out, fmt.Errorf("--vendor-name: at most %d characters without control characters", portal.MaxProductName)
	}
	if f.logoFile != "" {
		typ, err := portal.LogoType(f.logoFile)
		if err != nil {
			return out, fmt.Errorf("--portal-logo-file: %w", err)
		}
		b, err := os.ReadFile(f.logoFile)
		if err != nil {
			return out, fmt.Errorf("--portal-logo-file: %w", err)
		}
		out.brand.Logo, out.brand.LogoType = b, typ
	}
	if err := portal.CheckBrand(out.brand); err != nil {
		return out, fmt.Errorf("the Admin Portal's %w (--portal-product-name, --portal-accent, --portal-logo-file)", err)
	}
	origins, err := portal.ParseOrigins(f.frameOrigins)
	if err != nil {
		return out, fmt.Errorf("--portal-frame-origins: %w", err)
	}
	out.frameOrigins = origins
	return out, nil
}
