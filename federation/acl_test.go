package federation

import "testing"

func TestServerACLAllows(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name   string
		acl    serverACL
		server string
		want   bool
	}{
		{"allowed by glob", serverACL{Allow: []string{"*.gouv.fr"}}, "interieur.gouv.fr", true},
		{"not in allow", serverACL{Allow: []string{"*.gouv.fr"}}, "evil.example", false},
		{"deny wins", serverACL{Allow: []string{"*"}, Deny: []string{"evil.*"}}, "evil.example", false},
		{"case-insensitive", serverACL{Allow: []string{"*.GOUV.fr"}}, "Sante.gouv.FR", true},
		{"port ignored", serverACL{Allow: []string{"a.test"}}, "a.test:8448", true},
		{"question mark", serverACL{Allow: []string{"a?.test"}}, "ab.test", true},
		{"IP literal refused by default", serverACL{Allow: []string{"*"}}, "10.0.0.1", false},
		{"IPv6 literal refused by default", serverACL{Allow: []string{"*"}}, "[::1]:8448", false},
		{"IP literal allowed", serverACL{Allow: []string{"*"}, AllowIPLiterals: &yes}, "10.0.0.1:8448", true},
		{"IP literal explicitly refused", serverACL{Allow: []string{"*"}, AllowIPLiterals: &no}, "10.0.0.1", false},
		{"empty allow denies all", serverACL{}, "a.test", false},
		{"bracket is literal", serverACL{Allow: []string{"[a].test"}}, "a.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.acl.allows(tt.server); got != tt.want {
				t.Errorf("allows(%q) = %v, want %v", tt.server, got, tt.want)
			}
		})
	}
}
