package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// ThumbnailSize is one thumbnail made when an image is uploaded.
type ThumbnailSize struct {
	// Width and Height are the size asked for, in pixels.
	Width int `yaml:"width"`
	// Height: see Width.
	Height int `yaml:"height"`
	// Method is "crop" (exactly this aspect ratio) or "scale" (the
	// original's aspect ratio).
	Method string `yaml:"method"`
}

// DefaultThumbnailSizes returns the thumbnails made on upload when
// media.thumbnail_sizes is empty: the sizes the spec suggests, which are
// Synapse's defaults.
func DefaultThumbnailSizes() []ThumbnailSize {
	return []ThumbnailSize{
		{32, 32, "crop"}, {96, 96, "crop"}, {320, 240, "scale"}, {640, 480, "scale"}, {800, 600, "scale"},
	}
}

// defaults fills the media section's zero fields (max_upload_bytes is
// filled by Config.Defaults).
func (m *Media) defaults() {
	if m.StoreDir == "" {
		m.StoreDir = "media"
	}
	if m.UserQuotaBytes == 0 {
		m.UserQuotaBytes = 10 << 30
	}
	if m.MaxPendingUploads == 0 {
		m.MaxPendingUploads = 5
	}
	if m.PendingUploadLifetime == 0 {
		m.PendingUploadLifetime = Duration(24 * time.Hour)
	}
	if m.MaxImagePixels == 0 {
		m.MaxImagePixels = 32_000_000
	}
	if len(m.ThumbnailSizes) == 0 {
		m.ThumbnailSizes = DefaultThumbnailSizes()
	}
}

// verify records every problem of the media section in errs.
func (m *Media) verify(errs *Errors) {
	if m.MaxUploadBytes < 1 {
		errs.Add("media.max_upload_bytes", "must be positive")
	}
	if m.UserQuotaBytes < -1 {
		errs.Add("media.user_quota_bytes", "must be positive, or -1 for no quota")
	}
	if _, err := m.Freeze(); err != nil {
		errs.Add("media.legacy_freeze", err.Error())
	}
	if m.MaxPendingUploads < 1 {
		errs.Add("media.max_pending_uploads", "must be positive")
	}
	if m.PendingUploadLifetime < 0 {
		errs.Add("media.pending_upload_lifetime", "must be positive")
	}
	if m.MaxImagePixels < 1 {
		errs.Add("media.max_image_pixels", "must be positive")
	}
	for i, s := range m.ThumbnailSizes {
		if s.Width < 1 || s.Height < 1 || s.Width > 4096 || s.Height > 4096 {
			errs.Add(fmt.Sprintf("media.thumbnail_sizes[%d]", i), "width and height must be between 1 and 4096")
		}
		if s.Method != "crop" && s.Method != "scale" {
			errs.Add(fmt.Sprintf("media.thumbnail_sizes[%d]", i), `method must be "crop" or "scale"`)
		}
	}
	if _, err := m.PreviewAllowed(); err != nil {
		errs.Add("media.url_preview_allowed_ips", err.Error())
	}
	if a := m.ClamdAddress; a != "" && !strings.HasPrefix(a, "unix:") && !strings.HasPrefix(a, "tcp:") {
		errs.Add("media.clamd_address", `must start with "unix:" or "tcp:"`)
	}
}

// Freeze returns legacy_freeze as a time: media uploaded before it are
// served by the unauthenticated legacy endpoints too. The zero time (no
// legacy_freeze) means none is.
func (m *Media) Freeze() (time.Time, error) {
	if m.LegacyFreeze == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, m.LegacyFreeze)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an RFC 3339 date (2024-09-01T00:00:00Z): %w", err)
	}
	return t, nil
}

// PreviewAllowed returns url_preview_allowed_ips parsed.
func (m *Media) PreviewAllowed() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range m.URLPreviewAllowedIPs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR range (10.0.0.0/8, fd00::/8)", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
