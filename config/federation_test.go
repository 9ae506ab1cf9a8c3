package config

import (
	"strings"
	"testing"
)

func TestFederationDefaultsAndVerify(t *testing.T) {
	var f Federation
	f.defaults()
	var errs Errors
	f.verify(&errs)
	if len(errs) != 0 || f.Open || len(f.AllowedServers) != 0 {
		t.Fatalf("defaults %+v, problems %v", f, errs)
	}
	if f.ServerAllowed("other.example") {
		t.Error("the default (closed, empty list) allows a server")
	}
	old, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(f *Federation)
		key    string // "" when valid
	}{
		{"allowed", func(f *Federation) { f.AllowedServers = []string{"a.example", "b.example:8448", "[::1]:8448"} }, ""},
		{"bad allowed", func(f *Federation) { f.AllowedServers = []string{"a.example/x"} }, "federation.allowed_servers[0]"},
		{"wildcard refused", func(f *Federation) { f.AllowedServers = []string{"*"} }, "federation.allowed_servers[0]"},
		{"open", func(f *Federation) { f.Open = true }, ""},
		{"bad denied", func(f *Federation) { f.DeniedServers = []string{"x y"} }, "federation.denied_servers[0]"},
		{"open and list", func(f *Federation) { f.Open = true; f.AllowedServers = []string{"a.example"} }, "federation.open"},
		{"address", func(f *Federation) { f.ServerAddresses = map[string]string{"a.example": "127.0.0.1:8448"} }, ""},
		{"bad address", func(f *Federation) { f.ServerAddresses = map[string]string{"a.example": "127.0.0.1"} }, "federation.server_addresses.a.example"},
		{"old key", func(f *Federation) {
			f.OldSigningKeys = []OldSigningKey{{Key: old.String(), Expired: "2026-01-01T00:00:00Z"}}
		}, ""},
		{"bad old key", func(f *Federation) { f.OldSigningKeys = []OldSigningKey{{Key: "x", Expired: "2026-01-01T00:00:00Z"}} }, "federation.old_signing_keys[0].key"},
		{"bad expiry", func(f *Federation) { f.OldSigningKeys = []OldSigningKey{{Key: old.String(), Expired: "yesterday"}} }, "federation.old_signing_keys[0].expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Federation
			f.defaults()
			tt.change(&f)
			var errs Errors
			f.verify(&errs)
			if tt.key == "" && len(errs) != 0 {
				t.Fatalf("problems %v", errs)
			}
			if tt.key != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0], tt.key+":")) {
				t.Fatalf("problems %v, want one about %s", errs, tt.key)
			}
		})
	}
}

func TestServerAllowed(t *testing.T) {
	closed := Federation{AllowedServers: []string{"a.example", "b.example:8448"}}
	for name, want := range map[string]bool{"a.example": true, "b.example:8448": true, "b.example": false, "c.example": false, "A.example": false} {
		if got := closed.ServerAllowed(name); got != want {
			t.Errorf("closed ServerAllowed(%q) = %v, want %v", name, got, want)
		}
	}
	open := Federation{Open: true, DeniedServers: []string{"bad.example"}}
	if !open.ServerAllowed("anyone.example") {
		t.Error("open federation refuses a server")
	}
	if open.ServerAllowed("bad.example") {
		t.Error("open federation allows a denied server")
	}
	closed.DeniedServers = []string{"a.example"}
	if closed.ServerAllowed("a.example") {
		t.Error("a denied server on the allow-list is allowed")
	}
}
