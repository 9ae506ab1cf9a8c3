package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testRegistration = `id: %ID%
url: http://127.0.0.1:29318
as_token: %AS%
hs_token: %HS%
sender_localpart: %ID%bot
rate_limited: false
de.sorunome.msc2409.push_ephemeral: true
org.matrix.msc3202: true
io.element.msc4190: true
protocols: [telegram]
namespaces:
  users:
    - exclusive: true
      regex: '@%ID%_.*:example\.org'
  aliases:
    - exclusive: true
      regex: '#%ID%_.*:example\.org'
  rooms: []
unknown_bridge_key: 1
`

func writeRegistration(t *testing.T, dir, id, as, hs string) string {
	t.Helper()
	r := strings.NewReplacer("%ID%", id, "%AS%", as, "%HS%", hs).Replace(testRegistration)
	p := filepath.Join(dir, id+".yaml")
	if err := os.WriteFile(p, []byte(r), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppServicesLoad(t *testing.T) {
	dir := t.TempDir()
	g := &Global{ServerName: "example.org", DataDir: dir}
	writeRegistration(t, dir, "tg", "as1", "hs1")
	writeRegistration(t, dir, "wa", "as2", "hs2")
	s := AppServices{ConfigFiles: []string{"tg.yaml", "wa.yaml"}}
	var errs Errors
	s.verify(g, &errs)
	if len(errs) != 0 || len(s.Registrations) != 2 {
		t.Fatalf("problems %v, %d registrations", errs, len(s.Registrations))
	}
	a := s.ByToken("as1")
	if a == nil || a.ID != "tg" || a.IsRateLimited() || !a.WantsEphemeral() || !a.MSC3202 || !a.MSC4190 || a.Protocols[0] != "telegram" {
		t.Fatalf("registration %+v", a)
	}
	for id, want := range map[string]bool{"@tg_alice:example.org": true, "@tgbot:example.org": true, "@wa_x:example.org": false,
		"@tg_alice:example.org.evil": false, "x@tg_alice:example.org": false} {
		if a.OwnsUser(id) != want {
			t.Errorf("OwnsUser(%s) = %v", id, !want)
		}
	}
	if s.ExclusiveOwner("@wa_bob:example.org").ID != "wa" || s.ExclusiveOwner("@bob:example.org") != nil {
		t.Error("ExclusiveOwner")
	}
	if !a.MatchesAlias("#tg_room:example.org", true) || s.ExclusiveAliasOwner("#wa_r:example.org").ID != "wa" {
		t.Error("aliases")
	}
}

func TestAppServicesRefused(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, dir string) []string
		want  string
	}{
		{"duplicate id", func(t *testing.T, dir string) []string {
			writeRegistration(t, dir, "tg", "as1", "hs1")
			p := writeRegistration(t, dir, "tg2", "as2", "hs2")
			raw, _ := os.ReadFile(p)
			_ = os.WriteFile(p, []byte(strings.Replace(string(raw), "id: tg2", "id: tg", 1)), 0o600)
			return []string{"tg.yaml", "tg2.yaml"}
		}, "tg2.yaml): id is also the id of tg.yaml"},
		{"duplicate as_token", func(t *testing.T, dir string) []string {
			writeRegistration(t, dir, "a", "same", "hs1")
			writeRegistration(t, dir, "b", "same", "hs2")
			return []string{"a.yaml", "b.yaml"}
		}, "b.yaml): as_token is also"},
		{"bad regex", func(t *testing.T, dir string) []string {
			p := writeRegistration(t, dir, "a", "as", "hs")
			raw, _ := os.ReadFile(p)
			_ = os.WriteFile(p, []byte(strings.Replace(string(raw), `'#a_.*`, `'#a_(`, 1)), 0o600)
			return []string{"a.yaml"}
		}, "a.yaml): registration: namespaces.aliases[0]: bad regex"},
		{"missing file", func(t *testing.T, dir string) []string { return []string{"none.yaml"} }, "none.yaml): read registration"},
		{"same tokens", func(t *testing.T, dir string) []string {
			writeRegistration(t, dir, "a", "x", "x")
			return []string{"a.yaml"}
		}, "as_token and hs_token must differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := AppServices{ConfigFiles: tt.write(t, dir)}
			var errs Errors
			s.verify(&Global{ServerName: "example.org", DataDir: dir}, &errs)
			if got := strings.Join(errs, "\n"); !strings.Contains(got, tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
		})
	}
}
