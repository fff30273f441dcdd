package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/store"
)

// GET and PUT /v1/organizations/{id}/portal_settings: an organization's
// Admin Portal brand and framing allowlist over the deployment's
// (docs/PORTAL.md, "Branding"; docs/EMBEDDING.md), what `trail portal
// settings` sets, with the same rules (portal.CheckBrand,
// portal.ParseOrigins).

// portalSettingsBodyLimit fits a logo of portal.MaxLogoBytes in base64
// beside the other fields.
const portalSettingsBodyLimit = portal.MaxLogoBytes/3*4 + 64<<10

// portalSettingsJSON is the settings as the API shows and takes them. A
// PUT replaces them all: an absent or null field takes the deployment's.
type portalSettingsJSON struct {
	Object         string   `json:"object"`
	OrganizationID string   `json:"organization_id"`
	ProductName    *string  `json:"product_name"`
	Accent         *string  `json:"accent"`
	Logo           *string  `json:"logo"`      // base64 (standard, padded)
	LogoType       *string  `json:"logo_type"` // image/png, image/jpeg, image/webp or image/svg+xml
	FrameOrigins   []string `json:"frame_origins"`
	UpdatedAt      *string  `json:"updated_at"`
}

// portalSettingsRequest is the body of PUT.
type portalSettingsRequest struct {
	ProductName  *string  `json:"product_name"`
	Accent       *string  `json:"accent"`
	Logo         *string  `json:"logo"`
	LogoType     *string  `json:"logo_type"`
	FrameOrigins []string `json:"frame_origins"`
}

func portalSettingsOf(org string, set store.PortalSettings) portalSettingsJSON {
	j := portalSettingsJSON{Object: "portal_settings", OrganizationID: org, FrameOrigins: set.FrameOrigins}
	if j.FrameOrigins == nil {
		j.FrameOrigins = []string{}
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	j.ProductName, j.Accent = opt(set.ProductName), opt(set.Accent)
	if len(set.Logo) > 0 {
		j.Logo, j.LogoType = opt(base64.StdEncoding.EncodeToString(set.Logo)), opt(set.LogoType)
	}
	if !set.UpdatedAt.IsZero() {
		j.UpdatedAt = opt(formatTime(set.UpdatedAt))
	}
	return j
}

// portalSettingsOrg is the organization of the request: not Trail's own.
func (s *Server) portalSettingsOrg(r *http.Request) (store.Organization, error) {
	id := r.PathValue("id")
	if id == store.SystemOrganizationID {
		return store.Organization{}, errOrgNotFound(id)
	}
	return s.visibleOrg(r, id)
}

// getPortalSettings is GET /v1/organizations/{id}/portal_settings. An
// organization that never set any has none: every field empty.
func (s *Server) getPortalSettings(w http.ResponseWriter, r *http.Request) error {
	org, err := s.portalSettingsOrg(r)
	if err != nil {
		return err
	}
	set, err := s.cfg.Portal.Settings.PortalSettings(r.Context(), org.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("reading the portal settings of %s: %w", org.ID, err)
	}
	writeJSON(w, http.StatusOK, portalSettingsOf(org.ID, set))
	return nil
}

// validate turns the request into settings, or says which fields are wrong.
func (req *portalSettingsRequest) validate() (store.PortalSettings, []fieldError) {
	var set store.PortalSettings
	var errs []fieldError
	if req.ProductName != nil {
		set.ProductName = strings.TrimSpace(*req.ProductName)
		if err := portal.CheckBrand(portal.Brand{ProductName: set.ProductName}); err != nil {
			addErr(&errs, "product_name", "invalid", fmt.Sprintf("product_name must be at most %d characters without control characters.", portal.MaxProductName))
		}
	}
	if req.Accent != nil {
		set.Accent = strings.TrimSpace(*req.Accent)
		if err := portal.CheckBrand(portal.Brand{Accent: set.Accent}); set.Accent != "" && err != nil {
			addErr(&errs, "accent", "invalid", "accent must be a colour #RRGGBB, such as #0a7e3b.")
		}
	}
	hasLogo := req.Logo != nil && *req.Logo != ""
	hasType := req.LogoType != nil && *req.LogoType != ""
	switch {
	case hasLogo && !hasType:
		addErr(&errs, "logo_type", "required", "logo_type is required with a logo: image/png, image/jpeg, image/webp or image/svg+xml.")
	case hasType && !hasLogo:
		addErr(&errs, "logo", "required", "logo is required with a logo_type: the image, base64-encoded.")
	case hasLogo:
		b, err := base64.StdEncoding.DecodeString(*req.Logo)
		if err != nil || len(b) == 0 {
			addErr(&errs, "logo", "invalid", "logo must be the image, base64-encoded (standard alphabet, padded).")
			break
		}
		set.Logo, set.LogoType = b, *req.LogoType
		if err := portal.CheckBrand(portal.Brand{Logo: set.Logo, LogoType: set.LogoType}); err != nil {
			field, msg := "logo_type", "logo_type must be image/png, image/jpeg, image/webp or image/svg+xml."
			if len(b) > portal.MaxLogoBytes {
				field, msg = "logo", fmt.Sprintf("logo must be at most %d bytes, not %d.", portal.MaxLogoBytes, len(b))
			}
			addErr(&errs, field, "invalid", msg)
		}
	}
	if len(req.FrameOrigins) > portal.MaxFrameOrigins {
		addErr(&errs, "frame_origins", "invalid", fmt.Sprintf("frame_origins holds at most %d origins.", portal.MaxFrameOrigins))
	} else {
		for i, o := range req.FrameOrigins {
			got, err := portal.ParseOrigins(o)
			if err != nil || len(got) != 1 {
				addErr(&errs, "frame_origins["+strconv.Itoa(i)+"]", "invalid",
					"frame_origins must hold origins such as https://app.example.com: https (http only for localhost), no path, wildcard or credentials.")
				continue
			}
			if !slices.Contains(set.FrameOrigins, got[0]) {
				set.FrameOrigins = append(set.FrameOrigins, got[0])
			}
		}
	}
	return set, errs
}

// putPortalSettings is PUT /v1/organizations/{id}/portal_settings: it
// replaces the organization's settings, recorded as
// trail.portal_settings.updated (as `trail portal settings` records it).
func (s *Server) putPortalSettings(w http.ResponseWriter, r *http.Request) error {
	org, err := s.portalSettingsOrg(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, portalSettingsBodyLimit)
	if err != nil {
		return err
	}
	var req portalSettingsRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	set, errs := req.validate()
	if errs != nil {
		return errInvalidParams(errs)
	}
	set.OrganizationID, set.UpdatedAt = org.ID, s.cfg.Now()
	if err := s.cfg.Portal.Settings.SetPortalSettings(r.Context(), set); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errOrgNotFound(org.ID)
		}
		return fmt.Errorf("storing the portal settings of %s: %w", org.ID, err)
	}
	s.audit(r, auditAction{
		action: "trail.portal_settings.updated",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{org.ID},
		meta: map[string]string{"frame_origins": strings.Join(set.FrameOrigins, " "), "accent": set.Accent,
			"product_name": set.ProductName, "logo_bytes": strconv.Itoa(len(set.Logo))},
	})
	writeJSON(w, http.StatusOK, portalSettingsOf(org.ID, set))
	return nil
}
