package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// AppServices lists the application services (bridges) registered with
// the server. Each registration is a YAML file in the format the spec and
// the bridges use (mautrix and matrix-appservice-bridge generate them);
// they are read and checked by Verify, so that a bad file stops the start
// naming itself.
type AppServices struct {
	// ConfigFiles are the registration files, relative to data_dir unless
	// absolute. Default: none.
	ConfigFiles []string `yaml:"config_files"`
	// MaxRetryInterval caps the wait between two attempts to push a
	// transaction to a bridge that is down (the wait starts at a quarter
	// of a second and doubles). Default: "1m".
	MaxRetryInterval Duration `yaml:"max_retry_interval"`
	// Timeout bounds one request to a bridge. Default: "30s".
	Timeout Duration `yaml:"timeout"`
	// Registrations are the files' contents, in ConfigFiles' order, filled
	// by Verify. Not read from the configuration.
	Registrations []*AppService `yaml:"-"`
}

// AppService is one registration file.
type AppService struct {
	// ID names the application service; unique.
	ID string `yaml:"id"`
	// URL is where the server pushes transactions and queries; nil (YAML
	// null) for an application service that only acts (nothing is pushed).
	URL *string `yaml:"url"`
	// ASToken is the token the application service authenticates with.
	ASToken string `yaml:"as_token"`
	// HSToken is the token the server sends it, proving who calls.
	HSToken string `yaml:"hs_token"`
	// SenderLocalpart is the localpart of the application service's own
	// user (its bot), implicitly in its namespace.
	SenderLocalpart string `yaml:"sender_localpart"`
	// RateLimited says whether its requests are rate limited (default
	// true, as the spec says).
	RateLimited *bool `yaml:"rate_limited"`
	// Protocols are the third-party protocols it bridges.
	Protocols []string `yaml:"protocols"`
	// Namespaces are the users, aliases and rooms it is interested in.
	Namespaces Namespaces `yaml:"namespaces"`
	// ReceiveEphemeral (MSC2409, stable name) asks for typing, receipts and
	// presence in transactions.
	ReceiveEphemeral bool `yaml:"receive_ephemeral"`
	// PushEphemeral is MSC2409's unstable name of ReceiveEphemeral.
	PushEphemeral bool `yaml:"de.sorunome.msc2409.push_ephemeral"`
	// MSC3202 asks for device masquerading, device lists and one-time key
	// counts (encrypted bridges).
	MSC3202 bool `yaml:"org.matrix.msc3202"`
	// MSC4190 lets it create and delete its users' devices without UIA.
	MSC4190 bool `yaml:"io.element.msc4190"`

	// File is the file the registration came from, for messages.
	File string `yaml:"-"`
	// serverName is the server's name, for the sender's user id.
	serverName string
}

// Namespaces are the three kinds of namespace of a registration.
type Namespaces struct {
	// Users are user id patterns.
	Users []Namespace `yaml:"users"`
	// Aliases are room alias patterns.
	Aliases []Namespace `yaml:"aliases"`
	// Rooms are room id patterns.
	Rooms []Namespace `yaml:"rooms"`
}

// Namespace is one pattern of a namespace.
type Namespace struct {
	// Exclusive reserves the matching ids to the application service.
	Exclusive bool `yaml:"exclusive"`
	// Regex is matched against the whole id.
	Regex string `yaml:"regex"`

	re *regexp.Regexp
}

// Match reports whether id matches the pattern (the whole id).
func (n *Namespace) Match(id string) bool { return n.re != nil && n.re.MatchString(id) }

// SenderID is the user id of the application service's own user.
func (a *AppService) SenderID() string { return "@" + a.SenderLocalpart + ":" + a.serverName }

// IsRateLimited says whether the application service's requests are
// rate limited.
func (a *AppService) IsRateLimited() bool { return a.RateLimited == nil || *a.RateLimited }

// WantsEphemeral says whether it asked for ephemeral events (MSC2409,
// either name).
func (a *AppService) WantsEphemeral() bool { return a.ReceiveEphemeral || a.PushEphemeral }

// OwnsUser reports whether userID is the sender or matches a user
// namespace: the users the application service may act as.
func (a *AppService) OwnsUser(userID string) bool {
	return userID == a.SenderID() || matchAny(a.Namespaces.Users, userID, false)
}

// ExclusiveUser reports whether userID is reserved to the application
// service (the sender, or an exclusive user namespace).
func (a *AppService) ExclusiveUser(userID string) bool {
	return userID == a.SenderID() || matchAny(a.Namespaces.Users, userID, true)
}

// MatchesAlias reports whether alias matches an alias namespace
// (exclusive ones only when exclusive).
func (a *AppService) MatchesAlias(alias string, exclusive bool) bool {
	return matchAny(a.Namespaces.Aliases, alias, exclusive)
}

// MatchesRoom reports whether roomID matches a room namespace.
func (a *AppService) MatchesRoom(roomID string) bool {
	return matchAny(a.Namespaces.Rooms, roomID, false)
}

func matchAny(ns []Namespace, id string, exclusiveOnly bool) bool {
	for i := range ns {
		if (!exclusiveOnly || ns[i].Exclusive) && ns[i].Match(id) {
			return true
		}
	}
	return false
}

// ByToken returns the registration whose as_token is token, or nil.
func (s *AppServices) ByToken(token string) *AppService {
	for _, a := range s.Registrations {
		if a.ASToken == token {
			return a
		}
	}
	return nil
}

// ByID returns the registration named id, or nil.
func (s *AppServices) ByID(id string) *AppService {
	for _, a := range s.Registrations {
		if a.ID == id {
			return a
		}
	}
	return nil
}

// ExclusiveOwner returns the registration that reserves userID, or nil.
func (s *AppServices) ExclusiveOwner(userID string) *AppService {
	for _, a := range s.Registrations {
		if a.ExclusiveUser(userID) {
			return a
		}
	}
	return nil
}

// ExclusiveAliasOwner returns the registration that reserves alias, or nil.
func (s *AppServices) ExclusiveAliasOwner(alias string) *AppService {
	for _, a := range s.Registrations {
		if a.MatchesAlias(alias, true) {
			return a
		}
	}
	return nil
}

func (s *AppServices) defaults() {
	if len(s.ConfigFiles) == 0 {
		// An empty list and no list mean the same.
		s.ConfigFiles = nil
	}
	if s.MaxRetryInterval == 0 {
		s.MaxRetryInterval = Duration(time.Minute)
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(30 * time.Second)
	}
}

// verify reads every registration file and checks it and the set: each
// problem is reported with its file.
func (s *AppServices) verify(g *Global, errs *Errors) {
	s.Registrations = nil
	if s.MaxRetryInterval < 0 || s.Timeout < 0 {
		errs.Add("app_services", "max_retry_interval and timeout must be positive")
	}
	ids, asTokens, hsTokens := map[string]string{}, map[string]string{}, map[string]string{}
	for i, f := range s.ConfigFiles {
		key := fmt.Sprintf("app_services.config_files[%d] (%s)", i, f)
		a, err := ParseAppService(g.Path(f), g.ServerName)
		if err != nil {
			errs.Add(key, err.Error())
			continue
		}
		for _, d := range []struct {
			seen map[string]string
			v    string
			what string
		}{{ids, a.ID, "id"}, {asTokens, a.ASToken, "as_token"}, {hsTokens, a.HSToken, "hs_token"}} {
			if other, dup := d.seen[d.v]; dup {
				errs.Add(key, fmt.Sprintf("%s is also the %s of %s", d.what, d.what, other))
			}
			d.seen[d.v] = f
		}
		s.Registrations = append(s.Registrations, a)
	}
	for _, a := range s.Registrations {
		if _, clash := hsTokens[a.ASToken]; clash {
			errs.Add("app_services", fmt.Sprintf("the as_token of %s is also an hs_token", a.File))
		}
	}
}

// localpartChars are the characters of a user id's localpart.
var localpartChars = regexp.MustCompile(`^[a-z0-9._=\-/+]+$`)

// ParseAppService reads and checks one registration file. Keys it does
// not know are ignored: bridges add their own.
func ParseAppService(path, serverName string) (*AppService, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read registration: %w", err)
	}
	var a AppService
	if err := yaml.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("parse registration: %w", err)
	}
	a.File, a.serverName = path, serverName
	var problems []string
	if a.ID == "" {
		problems = append(problems, "id is required")
	}
	if a.ASToken == "" || a.HSToken == "" {
		problems = append(problems, "as_token and hs_token are required")
	} else if a.ASToken == a.HSToken {
		problems = append(problems, "as_token and hs_token must differ")
	}
	if !localpartChars.MatchString(a.SenderLocalpart) {
		problems = append(problems, "sender_localpart must be a valid localpart")
	}
	if a.URL != nil && *a.URL != "" {
		if u, err := url.Parse(*a.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, "url must be an http or https URL (or null)")
		}
	}
	for kind, ns := range map[string][]Namespace{"users": a.Namespaces.Users, "aliases": a.Namespaces.Aliases, "rooms": a.Namespaces.Rooms} {
		for i := range ns {
			re, err := regexp.Compile(`^(?:` + ns[i].Regex + `)$`)
			if err != nil || ns[i].Regex == "" {
				problems = append(problems, fmt.Sprintf("namespaces.%s[%d]: bad regex %q", kind, i, ns[i].Regex))
				continue
			}
			ns[i].re = re
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("registration: %s", strings.Join(problems, "; "))
	}
	return &a, nil
}

// HasURL says whether the server pushes to the application service.
func (a *AppService) HasURL() bool { return a.URL != nil && *a.URL != "" }
