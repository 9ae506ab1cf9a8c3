package config

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// OldSigningKey is a signing key the server used before a rotation.
type OldSigningKey struct {
	// Key is the old key in global.signing_key's form,
	// "ed25519 <version> <base64 seed>".
	Key string `yaml:"key"`
	// Expired is when the key stopped being used (RFC 3339). Required.
	Expired string `yaml:"expired"`
}

// ExpiredAt parses Expired.
func (k OldSigningKey) ExpiredAt() (time.Time, error) {
	return time.Parse(time.RFC3339, k.Expired)
}

// ServerAllowed reports whether this server may federate with name: never
// with a server of denied_servers; otherwise open federation allows
// everyone, closed federation the names on allowed_servers (an empty
// list: nobody). Names compare exactly, port
// included, as Matrix server names do.
func (f *Federation) ServerAllowed(name string) bool {
	for _, s := range f.DeniedServers {
		if s == name {
			return false
		}
	}
	if f.Open {
		return true
	}
	for _, s := range f.AllowedServers {
		if s == name {
			return true
		}
	}
	return false
}

// defaults fills the federation section's list fields with empty values
// (listen, TLS files and key validity are filled by Config.Defaults), so
// that a configuration reads the same with or without them written.
func (f *Federation) defaults() {
	if f.AllowedServers == nil {
		f.AllowedServers = []string{}
	}
	if f.ServerAddresses == nil {
		f.ServerAddresses = map[string]string{}
	}
	if f.DeniedServers == nil {
		f.DeniedServers = []string{}
	}
	if f.OldSigningKeys == nil {
		f.OldSigningKeys = []OldSigningKey{}
	}
	if f.OriginRateLimit == (RateLimit{}) {
		f.OriginRateLimit = RateLimit{PerSecond: 100, Burst: 500}
	}
	if f.OriginConcurrency == (Concurrency{}) {
		f.OriginConcurrency = Concurrency{Concurrent: 10, MaxQueued: 100}
	}
}

// verify records every problem of the federation section in errs.
func (f *Federation) verify(errs *Errors) {
	if f.Open && len(f.AllowedServers) > 0 {
		errs.Add("federation.open", "cannot be set with federation.allowed_servers (a closed list)")
	}
	for i, s := range f.AllowedServers {
		if !validServerName(s) {
			errs.Add(fmt.Sprintf("federation.allowed_servers[%d]", i), fmt.Sprintf("%q is not a server name", s))
		}
	}
	for i, s := range f.DeniedServers {
		if !validServerName(s) {
			errs.Add(fmt.Sprintf("federation.denied_servers[%d]", i), fmt.Sprintf("%q is not a server name", s))
		}
	}
	for name, addr := range f.ServerAddresses {
		if !validServerName(name) {
			errs.Add("federation.server_addresses", fmt.Sprintf("%q is not a server name", name))
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs.Add("federation.server_addresses."+name, fmt.Sprintf("%q must be host:port", addr))
		}
	}
	for i, k := range f.OldSigningKeys {
		key := fmt.Sprintf("federation.old_signing_keys[%d]", i)
		if _, err := ParseSigningKey(k.Key); err != nil {
			errs.Add(key+".key", err.Error())
		}
		if _, err := k.ExpiredAt(); err != nil {
			errs.Add(key+".expired", "must be an RFC 3339 time")
		}
	}
	if f.KeyValidity < 0 {
		errs.Add("federation.key_validity", "must be positive")
	}
	if f.OriginRateLimit.PerSecond < 0 || f.OriginRateLimit.Burst < 0 {
		errs.Add("federation.origin_rate_limit", "per_second and burst must not be negative")
	}
	if f.OriginConcurrency.Concurrent < 1 || f.OriginConcurrency.MaxQueued < 0 {
		errs.Add("federation.origin_concurrency", "concurrent must be at least 1 and max_queued not negative")
	}
}

// validServerName reports whether s is a host name or IP literal with an
// optional port, as the spec's server names are.
func validServerName(s string) bool {
	if s == "" || strings.ContainsAny(s, "/ @#!*") {
		return false
	}
	host := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		if p == "" {
			return false
		}
		host = h
	} else if strings.Count(s, ":") == 1 {
		return false
	}
	return host != ""
}
