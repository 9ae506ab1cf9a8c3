// Package config is the homeserver's YAML configuration: one section struct
// per component, each with Defaults and Verify, loaded strictly (unknown keys
// are errors) so that a typo never silently falls back to a default.
//
// It sits at the bottom of the dependency order: every component imports it,
// it imports no component. A component receives only its own section and the
// Global one.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	// Global holds settings every component needs.
	Global Global `yaml:"global"`
	// Database says where the tables live.
	Database Database `yaml:"database"`
	// Bus says how components talk to each other.
	Bus Bus `yaml:"bus"`
	// Client is the client-server API (the homeserver component).
	Client Client `yaml:"client"`
	// Federation is the server-server API.
	Federation Federation `yaml:"federation"`
	// Media is the media repository.
	Media Media `yaml:"media"`
	// AppServices lists the application services (bridges); see
	// appservices.go.
	AppServices AppServices `yaml:"app_services"`
	// Logging sets the log level and format.
	Logging Logging `yaml:"logging"`
	// Metrics sets the Prometheus listener.
	Metrics Metrics `yaml:"metrics"`
}

// Global holds the settings shared by every component.
type Global struct {
	// ServerName is the Matrix server name, the part after ":" in user ids.
	// Required; it cannot change once users exist.
	ServerName string `yaml:"server_name"`
	// SigningKey is the server's ed25519 signing key, written by `init` as
	// "ed25519 <key id> <base64 seed>". Required.
	SigningKey string `yaml:"signing_key"`
	// DataDir holds the server's files (SQLite database, embedded NATS
	// store, TLS files). Default: the directory of the configuration file.
	DataDir string `yaml:"data_dir"`
	// DefaultRoomVersion is the room version of new rooms. Default: "12".
	DefaultRoomVersion string `yaml:"default_room_version"`
}

// Database selects the storage engine.
type Database struct {
	// URL is "sqlite:PATH" (relative paths are under data_dir) or
	// "postgres://user@host/db". Default: "sqlite:homeserver.db".
	URL string `yaml:"url"`
	// MaxOpenConns caps the PostgreSQL read pool; writes get half as many
	// connections again. Default: 20. Ignored by SQLite (one writer).
	MaxOpenConns int `yaml:"max_open_conns"`
}

// Bus selects the NATS server.
type Bus struct {
	// URL is an external NATS server ("nats://host:4222"). Empty (the
	// default) runs NATS embedded in the process.
	URL string `yaml:"url"`
	// StoreDir is where the embedded NATS keeps its JetStream files.
	// Default: "nats" under data_dir.
	StoreDir string `yaml:"store_dir"`
	// Listen is a TCP address for the embedded NATS, so that other
	// processes can join it. Empty (the default) opens no listener.
	Listen string `yaml:"listen"`
	// Prefix is put before every stream and subject name, so that two
	// homeservers can share a NATS cluster. Default: "hs".
	Prefix string `yaml:"prefix"`
}

// Client configures the client-server API.
type Client struct {
	// Listen is the address of the client API listener.
	// Default: "127.0.0.1:8008".
	Listen string `yaml:"listen"`
	// PublicBaseURL is the URL clients reach the server at, advertised in
	// /.well-known/matrix/client. Default: "http://" + listen.
	PublicBaseURL string `yaml:"public_base_url"`
	// WellKnownServer is the "m.server" value of /.well-known/matrix/server
	// (host:port of the federation listener as other servers see it).
	// Empty (the default) serves 404 there.
	WellKnownServer string `yaml:"well_known_server"`
	// MaxRequestBytes caps request bodies (media uploads excepted).
	// Default: 1048576 (1 MiB).
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// Registration says who may create accounts.
	Registration Registration `yaml:"registration"`
	// Auth sets token and password policies.
	Auth Auth `yaml:"auth"`
	// RateLimits throttle clients.
	RateLimits RateLimits `yaml:"rate_limits"`
	// Push sets where pushers may send notifications.
	Push Push `yaml:"push"`
	// Presence sets whether users see each other online.
	Presence Presence `yaml:"presence"`
	// Encryption is the end-to-end encryption policy of rooms.
	Encryption Encryption `yaml:"encryption"`
	// UserDirectory sets who the user directory finds.
	UserDirectory UserDirectory `yaml:"user_directory"`
	// Calls configures TURN, MatrixRTC transports and delayed events.
	Calls Calls `yaml:"calls"`
}

// Presence sets whether users see each other online (on by default, as
// Element expects).
type Presence struct {
	// Disabled turns presence off: nothing is recorded and /sync never
	// reports it. Default: false.
	Disabled bool `yaml:"disabled"`
}

// Values of Encryption.PrivateRooms.
const (
	// PrivateRoomsEncrypted: new private rooms are encrypted unless the
	// client's initial state says otherwise.
	PrivateRoomsEncrypted = "encrypted"
	// PrivateRoomsForced: new private rooms are always encrypted with
	// Megolm, and clients are told so.
	PrivateRoomsForced = "forced"
	// PrivateRoomsOptional: the client decides.
	PrivateRoomsOptional = "optional"
)

// Encryption is the end-to-end encryption policy of rooms. Whatever it
// says, the server refuses to change the algorithm of an encrypted room or
// to redact its m.room.encryption event: encryption, once on, stays on.
type Encryption struct {
	// PrivateRooms is the policy for new private and trusted-private rooms
	// (createRoom's private_chat and trusted_private_chat presets):
	// "encrypted" (the default) adds m.room.encryption (Megolm) to their
	// initial state unless the request's initial_state has one; "forced"
	// does the same, refuses an initial m.room.encryption of another
	// algorithm, and advertises io.element.e2ee_forced.private and
	// .trusted_private in /versions so that Element offers no way out;
	// "optional" leaves it to the client.
	PrivateRooms string `yaml:"private_rooms"`
}

// Registration says who may create accounts. Closed by default.
type Registration struct {
	// Enabled lets /register create accounts for holders of a registration
	// token (m.login.registration_token). Default: false: only the admin
	// CLI and the shared-secret endpoint create accounts.
	Enabled bool `yaml:"enabled"`
	// AllowDummy, with enabled, lets anyone register with no token
	// (m.login.dummy): open registration. Default: false.
	AllowDummy bool `yaml:"allow_dummy"`
	// SharedSecret enables the Synapse-compatible admin endpoint
	// /_synapse/admin/v1/register. Empty (the default) disables it.
	SharedSecret string `yaml:"shared_secret"`
	// GuestAccess lets guests register. Default: false (not supported yet:
	// must stay false).
	GuestAccess bool `yaml:"guest_access"`
}

// Auth sets token and password policies.
type Auth struct {
	// AccessTokenLifetime is how long an access token lives when the client
	// asked for a refresh token. Default: "5m".
	AccessTokenLifetime Duration `yaml:"access_token_lifetime"`
	// RefreshTokenLifetime is how long an unused refresh token lives.
	// Zero (the default) means forever.
	RefreshTokenLifetime Duration `yaml:"refresh_token_lifetime"`
	// PasswordMinLength is the shortest accepted password. Default: 8.
	PasswordMinLength int `yaml:"password_min_length"`
	// Argon2Memory is argon2id's memory in KiB. Default: 19456 (19 MiB,
	// OWASP's recommended minimum).
	Argon2Memory uint32 `yaml:"argon2_memory_kib"`
	// Argon2Time is argon2id's number of passes. Default: 2.
	Argon2Time uint32 `yaml:"argon2_time"`
}

// RateLimits throttle clients; a limit is a steady rate and a burst.
type RateLimits struct {
	// FailedLogin limits failed logins per account and per address.
	// Default: 0.17/s (one per 6 s), burst 5.
	FailedLogin RateLimit `yaml:"failed_login"`
	// Register limits registration attempts per address.
	// Default: 0.17/s, burst 3.
	Register RateLimit `yaml:"register"`
	// Request limits all requests per user. Default: 50/s, burst 200.
	Request RateLimit `yaml:"request"`
}

// RateLimit is a token bucket: Burst requests at once, then PerSecond.
// Both zero (or absent) means the default; per_second 0 with a burst
// disables the limit.
type RateLimit struct {
	// PerSecond is the steady rate.
	PerSecond float64 `yaml:"per_second"`
	// Burst is how many requests may come at once.
	Burst int `yaml:"burst"`
}

// Federation configures the server-server API.
type Federation struct {
	// Listen is the address of the federation listener (TLS).
	// Default: "127.0.0.1:8448". Empty after defaults is impossible; set
	// "off" to open no federation listener.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files for the federation listener,
	// relative to data_dir. Default: "federation.crt" and "federation.key"
	// (a self-signed pair written by `init`).
	TLSCert string `yaml:"tls_cert"`
	// TLSKey is the private key matching TLSCert.
	TLSKey string `yaml:"tls_key"`
	// KeyValidity is how long other servers may cache our signing key.
	// Default: "24h".
	KeyValidity Duration `yaml:"key_validity"`
	// AllowedServers are the server names this server federates with
	// (closed federation): every other server is refused inbound (403)
	// and never contacted. Empty (the default) federates with nobody,
	// unless open is set. Checks and defaults in federation.go.
	AllowedServers []string `yaml:"allowed_servers"`
	// Open federates with every server: allowed_servers must then be
	// empty. Default: false (closed).
	Open bool `yaml:"open"`
	// DeniedServers are refused and never contacted whatever
	// allowed_servers and open say. Default: none.
	DeniedServers []string `yaml:"denied_servers"`
	// AllowPrivateAddresses lets discovery (.well-known, SRV, DNS) lead
	// to loopback, private and link-local addresses; by default they are
	// refused, so that a server name cannot point the server at its own
	// network (SSRF). Addresses of server_addresses are always allowed.
	// Default: false.
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
	// TrustedCAFile is a PEM bundle of certificate authorities trusted
	// for federation TLS in addition to the system's, for private
	// federations whose servers hold certificates of an organisation's
	// CA (and for tests). Certificates are always checked. Default: ""
	// (the system's roots only).
	TrustedCAFile string `yaml:"trusted_ca_file"`
	// ServerAddresses maps server names to "host:port", bypassing
	// .well-known and SRV discovery: for private deployments without
	// DNS, and for tests. The TLS certificate must still be valid for
	// the server name. Default: none (discovery as the spec says).
	ServerAddresses map[string]string `yaml:"server_addresses"`
	// OldSigningKeys are signing keys this server used before: each is
	// the old global.signing_key line moved here when the key is
	// rotated, with the time it stopped being used. Only their public
	// halves are published (old_verify_keys), so that events signed
	// with them still verify. Default: none.
	OldSigningKeys []OldSigningKey `yaml:"old_signing_keys"`
	// OriginRateLimit bounds the signed requests of each other server
	// (a token bucket per origin; 429 M_LIMIT_EXCEEDED beyond). Default:
	// 100 per second, bursts of 500: far above what a peer sends in
	// normal operation (Synapse batches its events into transactions).
	OriginRateLimit RateLimit `yaml:"origin_rate_limit"`
	// OriginConcurrency bounds how many signed requests of each other
	// server are handled at once, and how many more may wait for their
	// turn; beyond, 429 M_LIMIT_EXCEEDED. Default: {concurrent: 10,
	// max_queued: 100}.
	OriginConcurrency Concurrency `yaml:"origin_concurrency"`
}

// Concurrency bounds the requests handled at once per key (Concurrent)
// and those that may wait meanwhile (MaxQueued). Both zero (or absent)
// means the default.
type Concurrency struct {
	// Concurrent is how many requests run at once.
	Concurrent int `yaml:"concurrent"`
	// MaxQueued is how many more may wait for a turn.
	MaxQueued int `yaml:"max_queued"`
}

// Media configures the media repository. Its defaults and checks are in
// media.go.
type Media struct {
	// MaxUploadBytes is the largest file accepted. Default: 52428800 (50 MiB).
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// StoreDir is where uploaded files are kept, each once, named by its
	// SHA-256. Default: "media" under data_dir. Processes of a split
	// deployment that run the media component share it.
	StoreDir string `yaml:"store_dir"`
	// UserQuotaBytes caps the bytes one user may have uploaded in total;
	// -1 means no quota. Default: 10737418240 (10 GiB).
	UserQuotaBytes int64 `yaml:"user_quota_bytes"`
	// LegacyFreeze is the date (RFC 3339) after which media uploaded here
	// are served only by the authenticated endpoints of spec v1.11; the
	// older unauthenticated /_matrix/media/v3/download and thumbnail serve
	// only media uploaded before it. Default: "" (no media is served
	// unauthenticated), right for a new server.
	LegacyFreeze string `yaml:"legacy_freeze"`
	// MaxPendingUploads caps the media a user has created (POST
	// /_matrix/media/v1/create) and not yet uploaded. Default: 5.
	MaxPendingUploads int `yaml:"max_pending_uploads"`
	// PendingUploadLifetime is how long a created media id waits for its
	// upload. Default: 24h.
	PendingUploadLifetime Duration `yaml:"pending_upload_lifetime"`
	// MaxImagePixels is the largest image (width times height) thumbnailed;
	// larger ones are refused before they are decoded. Default: 32000000.
	MaxImagePixels int64 `yaml:"max_image_pixels"`
	// ThumbnailSizes are the thumbnails made when an image is uploaded;
	// other sizes are made on request and kept. Default: Synapse's, 32x32
	// and 96x96 crop, 320x240, 640x480 and 800x600 scale.
	ThumbnailSizes []ThumbnailSize `yaml:"thumbnail_sizes"`
	// ClamdAddress is the clamd socket that scans every upload and every
	// remote file before it is kept: "unix:/run/clamav/clamd.ctl" or
	// "tcp:127.0.0.1:3310". Default: "" (no scan).
	ClamdAddress string `yaml:"clamd_address"`
	// URLPreviews enables GET /_matrix/client/v1/media/preview_url, which
	// makes the server fetch the pages users name (never non-public
	// addresses, see URLPreviewAllowedIPs). Default: false.
	URLPreviews bool `yaml:"url_previews"`
	// URLPreviewAllowedIPs are address ranges (CIDR) that previews may
	// reach although they are not public, e.g. an intranet. Default: none.
	URLPreviewAllowedIPs []string `yaml:"url_preview_allowed_ips"`
}

// Logging sets the log level and format.
type Logging struct {
	// Level is one of debug, info, warn, error. Default: "info".
	Level string `yaml:"level"`
	// Format is "text" or "json". Default: "text".
	Format string `yaml:"format"`
}

// Metrics sets the Prometheus listener.
type Metrics struct {
	// Listen is the address of /metrics. Empty (the default) serves none.
	Listen string `yaml:"listen"`
}

// Duration is a time.Duration written in YAML as a string such as "30s".
type Duration time.Duration

// UnmarshalYAML reads "30s"-style strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Load reads, defaults and verifies the configuration at path.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if c.Global.DataDir == "" {
		abs, err := filepath.Abs(filepath.Dir(path))
		if err != nil {
			return nil, fmt.Errorf("resolve data_dir: %w", err)
		}
		c.Global.DataDir = abs
	}
	c.Defaults()
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML strictly: unknown keys are errors.
func Parse(raw []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return &c, nil
}

// Defaults fills every zero field with its documented default.
func (c *Config) Defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Global.DefaultRoomVersion, "12")
	def(&c.Database.URL, "sqlite:homeserver.db")
	if c.Database.MaxOpenConns == 0 {
		c.Database.MaxOpenConns = 20
	}
	def(&c.Bus.StoreDir, "nats")
	def(&c.Bus.Prefix, "hs")
	def(&c.Client.Listen, "127.0.0.1:8008")
	def(&c.Client.PublicBaseURL, "http://"+c.Client.Listen)
	if c.Client.MaxRequestBytes == 0 {
		c.Client.MaxRequestBytes = 1 << 20
	}
	a := &c.Client.Auth
	if a.AccessTokenLifetime == 0 {
		a.AccessTokenLifetime = Duration(5 * time.Minute)
	}
	if a.PasswordMinLength == 0 {
		a.PasswordMinLength = 8
	}
	if a.Argon2Memory == 0 {
		a.Argon2Memory = 19456
	}
	if a.Argon2Time == 0 {
		a.Argon2Time = 2
	}
	rl := &c.Client.RateLimits
	defLimit(&rl.FailedLogin, 1.0/6, 5)
	defLimit(&rl.Register, 1.0/6, 3)
	defLimit(&rl.Request, 50, 200)
	def(&c.Client.Encryption.PrivateRooms, PrivateRoomsEncrypted)
	c.Client.Push.defaults()
	c.Client.Calls.defaults()
	def(&c.Federation.Listen, "127.0.0.1:8448")
	def(&c.Federation.TLSCert, "federation.crt")
	def(&c.Federation.TLSKey, "federation.key")
	if c.Federation.KeyValidity == 0 {
		c.Federation.KeyValidity = Duration(24 * time.Hour)
	}
	c.Federation.defaults()
	if c.Media.MaxUploadBytes == 0 {
		c.Media.MaxUploadBytes = 50 << 20
	}
	c.Media.defaults()
	c.AppServices.defaults()
	def(&c.Logging.Level, "info")
	def(&c.Logging.Format, "text")
}

func defLimit(l *RateLimit, perSecond float64, burst int) {
	if l.PerSecond == 0 && l.Burst == 0 {
		l.PerSecond, l.Burst = perSecond, burst
	}
}

// Verify checks every section and reports all problems at once.
func (c *Config) Verify() error {
	var errs Errors
	if c.Global.ServerName == "" {
		errs.Add("global.server_name", "is required")
	} else if strings.ContainsAny(c.Global.ServerName, "/ @#!") {
		errs.Add("global.server_name", "must be a host name with an optional port")
	}
	if _, err := ParseSigningKey(c.Global.SigningKey); err != nil {
		errs.Add("global.signing_key", err.Error())
	}
	if !knownRoomVersion(c.Global.DefaultRoomVersion) {
		errs.Add("global.default_room_version", fmt.Sprintf("unknown room version %q", c.Global.DefaultRoomVersion))
	}
	if !strings.HasPrefix(c.Database.URL, "sqlite:") && !strings.HasPrefix(c.Database.URL, "postgres://") && !strings.HasPrefix(c.Database.URL, "postgresql://") {
		errs.Add("database.url", "must start with sqlite: or postgres://")
	}
	if c.Bus.URL != "" && !strings.HasPrefix(c.Bus.URL, "nats://") && !strings.HasPrefix(c.Bus.URL, "tls://") {
		errs.Add("bus.url", "must start with nats:// or tls://")
	}
	if !busPrefixPattern.MatchString(c.Bus.Prefix) {
		errs.Add("bus.prefix", "may hold only letters, digits, - and _")
	}
	if c.Bus.URL != "" && c.Bus.Listen != "" {
		errs.Add("bus.listen", "only applies to the embedded NATS (bus.url is set)")
	}
	if c.Client.MaxRequestBytes < 65536 {
		errs.Add("client.max_request_bytes", "must be at least 65536 (the largest event)")
	}
	switch c.Client.Encryption.PrivateRooms {
	case PrivateRoomsEncrypted, PrivateRoomsForced, PrivateRoomsOptional:
	default:
		errs.Add("client.encryption.private_rooms", "must be encrypted, forced or optional")
	}
	if c.Client.Registration.GuestAccess {
		errs.Add("client.registration.guest_access", "guest access is not supported")
	}
	if c.Client.Registration.AllowDummy && !c.Client.Registration.Enabled {
		errs.Add("client.registration.allow_dummy", "needs client.registration.enabled")
	}
	if c.Client.Auth.PasswordMinLength < 1 {
		errs.Add("client.auth.password_min_length", "must be positive")
	}
	for name, l := range map[string]RateLimit{"failed_login": c.Client.RateLimits.FailedLogin, "register": c.Client.RateLimits.Register, "request": c.Client.RateLimits.Request} {
		if l.PerSecond < 0 || l.Burst < 0 || (l.PerSecond > 0 && l.Burst == 0) {
			errs.Add("client.rate_limits."+name, "per_second and burst must be positive (per_second 0 disables)")
		}
	}
	c.Federation.verify(&errs)
	c.Media.verify(&errs)
	c.Client.Push.verify(&errs)
	c.Client.Calls.verify(&errs)
	c.AppServices.verify(&c.Global, &errs)
	switch c.Logging.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.Add("logging.level", "must be debug, info, warn or error")
	}
	if c.Logging.Format != "text" && c.Logging.Format != "json" {
		errs.Add("logging.format", "must be text or json")
	}
	return errs.Err()
}

// busPrefixPattern is what NATS accepts in both subject tokens and
// stream names.
var busPrefixPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func knownRoomVersion(v string) bool {
	switch v {
	case "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12":
		return true
	}
	return false
}

// Path resolves p against the data directory unless it is absolute.
func (g *Global) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(g.DataDir, p)
}

// Errors collects every configuration problem before reporting.
type Errors []string

// Add records that key is wrong and why.
func (e *Errors) Add(key, problem string) { *e = append(*e, key+": "+problem) }

// Err returns nil when nothing was recorded, else one error listing all.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return errors.New("invalid configuration:\n  " + strings.Join(e, "\n  "))
}
