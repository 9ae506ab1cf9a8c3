package config

import "testing"

func TestGatewayHostAllowed(t *testing.T) {
	for _, tc := range []struct {
		name        string
		allow, deny []string
		host        string
		want        bool
	}{
		{"no lists", nil, nil, "push.example.org", true},
		{"allowed host", []string{"push.gouv.fr"}, nil, "push.gouv.fr", true},
		{"allowed host case", []string{"push.gouv.fr"}, nil, "PUSH.gouv.fr.", true},
		{"not allowed", []string{"push.gouv.fr"}, nil, "matrix.org", false},
		{"allowed domain", []string{"*.gouv.fr"}, nil, "push.interieur.gouv.fr", true},
		{"domain is not its subdomains' wildcard", []string{"*.gouv.fr"}, nil, "gouv.fr", false},
		{"suffix is not a subdomain", []string{"*.gouv.fr"}, nil, "evilgouv.fr", false},
		{"denied", nil, []string{"matrix.org"}, "matrix.org", false},
		{"deny wins", []string{"*.gouv.fr"}, []string{"bad.gouv.fr"}, "bad.gouv.fr", false},
		{"denied domain", nil, []string{"*.evil.example"}, "a.b.evil.example", false},
	} {
		p := Push{GatewayAllow: tc.allow, GatewayDeny: tc.deny}
		if got := p.GatewayHostAllowed(tc.host); got != tc.want {
			t.Errorf("%s: GatewayHostAllowed(%q) = %v", tc.name, tc.host, got)
		}
	}
	var errs Errors
	(&Push{GatewayAllow: []string{"https://x"}, GatewayDeny: []string{"a.*.b"}}).verify(&errs)
	if len(errs) != 2 {
		t.Errorf("bad entries accepted: %v", errs)
	}
}
