package config

import (
	"strings"
	"time"
)

// Push sets where pushers may send notifications. Pusher URLs come from
// clients (the Element mobile apps register a public push gateway): they
// are the one kind of outbound call made without the admin naming the
// destination, so the admin may narrow them.
type Push struct {
	// GatewayAllow lists the push gateway hosts pushers may use: a host
	// name, or "*.example.org" for its subdomains. Empty (the default)
	// allows every host not denied.
	GatewayAllow []string `yaml:"gateway_allow"`
	// GatewayDeny lists hosts pushers may not use, in the same form; it
	// wins over gateway_allow. Default: none.
	GatewayDeny []string `yaml:"gateway_deny"`
	// AllowPrivateAddresses lets gateways resolve to loopback, private or
	// link-local addresses. Default: false (a client cannot make the
	// server call into its own network).
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
	// GatewayCAFile is a PEM file of extra certificate authorities to
	// trust for gateways (an organisation's own gateway). Empty (the
	// default): the system's roots only.
	GatewayCAFile string `yaml:"gateway_ca_file"`
	// Timeout bounds one request to a gateway. Default: "10s".
	Timeout Duration `yaml:"timeout"`
}

func (p *Push) defaults() {
	// An empty list and no list mean the same.
	if len(p.GatewayAllow) == 0 {
		p.GatewayAllow = nil
	}
	if len(p.GatewayDeny) == 0 {
		p.GatewayDeny = nil
	}
	if p.Timeout == 0 {
		p.Timeout = Duration(10 * time.Second)
	}
}

func (p *Push) verify(errs *Errors) {
	for key, list := range map[string][]string{"client.push.gateway_allow": p.GatewayAllow, "client.push.gateway_deny": p.GatewayDeny} {
		for _, h := range list {
			if h == "" || strings.ContainsAny(h, "/:@ ") || strings.Contains(strings.TrimPrefix(h, "*."), "*") {
				errs.Add(key, "each entry must be a host name or *.domain")
			}
		}
	}
	if p.Timeout < 0 {
		errs.Add("client.push.timeout", "must be positive")
	}
}

// GatewayHostAllowed reports whether host (without port) may receive push
// notifications under p's allow and deny lists.
func (p *Push) GatewayHostAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	match := func(list []string) bool {
		for _, pat := range list {
			pat = strings.ToLower(pat)
			if suffix, ok := strings.CutPrefix(pat, "*."); ok {
				if strings.HasSuffix(host, "."+suffix) {
					return true
				}
			} else if host == pat {
				return true
			}
		}
		return false
	}
	if match(p.GatewayDeny) {
		return false
	}
	return len(p.GatewayAllow) == 0 || match(p.GatewayAllow)
}
