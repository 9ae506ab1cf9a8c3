package config

import (
	"strings"
	"testing"
	"time"
)

func TestMediaDefaultsAndVerify(t *testing.T) {
	var m Media
	m.MaxUploadBytes = 1
	m.defaults()
	var errs Errors
	m.verify(&errs)
	if len(errs) != 0 || m.StoreDir != "media" || m.UserQuotaBytes != 10<<30 || m.MaxPendingUploads != 5 ||
		m.PendingUploadLifetime.Std() != 24*time.Hour || m.MaxImagePixels != 32_000_000 || len(m.ThumbnailSizes) != 5 {
		t.Fatalf("defaults %+v, problems %v", m, errs)
	}
	if f, err := m.Freeze(); err != nil || !f.IsZero() {
		t.Fatalf("no freeze: %v %v", f, err)
	}

	tests := []struct {
		name   string
		change func(m *Media)
		key    string // "" when valid
	}{
		{"no quota", func(m *Media) { m.UserQuotaBytes = -1 }, ""},
		{"bad quota", func(m *Media) { m.UserQuotaBytes = -2 }, "media.user_quota_bytes"},
		{"freeze", func(m *Media) { m.LegacyFreeze = "2024-09-01T00:00:00Z" }, ""},
		{"bad freeze", func(m *Media) { m.LegacyFreeze = "September 2024" }, "media.legacy_freeze"},
		{"bad size", func(m *Media) { m.ThumbnailSizes = []ThumbnailSize{{0, 10, "crop"}} }, "media.thumbnail_sizes[0]"},
		{"bad method", func(m *Media) { m.ThumbnailSizes = []ThumbnailSize{{10, 10, "stretch"}} }, "media.thumbnail_sizes[0]"},
		{"clamd unix", func(m *Media) { m.ClamdAddress = "unix:/run/clamav/clamd.ctl" }, ""},
		{"clamd bad", func(m *Media) { m.ClamdAddress = "/run/clamav/clamd.ctl" }, "media.clamd_address"},
		{"preview ranges", func(m *Media) { m.URLPreviewAllowedIPs = []string{"10.0.0.0/8", "fd00::/8"} }, ""},
		{"bad preview range", func(m *Media) { m.URLPreviewAllowedIPs = []string{"intranet"} }, "media.url_preview_allowed_ips"},
		{"no pending", func(m *Media) { m.MaxPendingUploads = -1 }, "media.max_pending_uploads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := m
			tt.change(&c)
			var errs Errors
			c.verify(&errs)
			got := strings.Join(errs, "\n")
			if (tt.key == "") != (len(errs) == 0) || !strings.Contains(got, tt.key) {
				t.Fatalf("problems %q, want one about %q", got, tt.key)
			}
		})
	}
}
