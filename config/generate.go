package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"
)

// GenerateOptions are the choices `homeserver init` passes to Generate.
// Only ServerName is required; every empty field takes the default
// documented next to it.
type GenerateOptions struct {
	// ServerName is the Matrix server name. Required.
	ServerName string
	// DatabaseURL is "postgres://…" or "sqlite:PATH". Empty means
	// "sqlite:homeserver.db" under the data directory.
	DatabaseURL string
	// BusURL is an external NATS server ("nats://host:4222"). Empty means
	// the embedded NATS.
	BusURL string
	// ClientListen is the client API's address. Empty means
	// "127.0.0.1:8008".
	ClientListen string
	// FederationListen is the federation API's address, or "off". Empty
	// means "127.0.0.1:8448".
	FederationListen string
	// TLSCert and TLSKey are the federation listener's PEM files. Empty
	// means "federation.crt" and "federation.key" in the data directory,
	// the pair WriteSelfSignedCert writes.
	TLSCert string
	// TLSKey is the private key matching TLSCert; see TLSCert.
	TLSKey string
}

// Generate returns a complete, commented homeserver.yaml for opts with a
// fresh signing key and a fresh registration shared secret. Keys left at
// their default are written commented out, showing the default. The
// result is checked the way Load checks a file, so a bad option (a server
// name with a slash, a database URL of an unknown scheme) is reported here
// rather than at the first start.
func Generate(opts GenerateOptions) ([]byte, error) {
	if opts.ServerName == "" {
		return nil, errors.New("generate config: server name is required")
	}
	key, err := NewSigningKey()
	if err != nil {
		return nil, fmt.Errorf("generate config: %w", err)
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, fmt.Errorf("generate config: shared secret: %w", err)
	}
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	data := generateData{
		Generated:        time.Now().UTC().Format(time.RFC3339),
		ServerName:       opts.ServerName,
		SigningKey:       key.String(),
		SharedSecret:     base64.RawURLEncoding.EncodeToString(secret[:]),
		DatabaseURL:      def(opts.DatabaseURL, "sqlite:homeserver.db"),
		BusURL:           opts.BusURL,
		ClientListen:     def(opts.ClientListen, "127.0.0.1:8008"),
		FederationListen: def(opts.FederationListen, "127.0.0.1:8448"),
		TLSCert:          def(opts.TLSCert, "federation.crt"),
		TLSKey:           def(opts.TLSKey, "federation.key"),
	}
	tmpl, err := template.New("homeserver.yaml").Funcs(template.FuncMap{"q": quoteYAML}).Parse(configTemplate)
	if err != nil {
		return nil, fmt.Errorf("generate config: %w", err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		return nil, fmt.Errorf("generate config: %w", err)
	}
	if err := checkGenerated(out.Bytes()); err != nil {
		return nil, fmt.Errorf("generate config: %w", err)
	}
	return out.Bytes(), nil
}

// checkGenerated parses, defaults and verifies raw as Load would.
func checkGenerated(raw []byte) error {
	c, err := Parse(raw)
	if err != nil {
		return err
	}
	if c.Global.DataDir == "" {
		// Load sets it from the file's location; any value will do to verify.
		c.Global.DataDir = os.TempDir()
	}
	c.Defaults()
	return c.Verify()
}

// generateData fills configTemplate.
type generateData struct {
	Generated, ServerName, SigningKey, SharedSecret string
	DatabaseURL, BusURL                             string
	ClientListen, FederationListen                  string
	TLSCert, TLSKey                                 string
}

// quoteYAML writes s as a YAML scalar, quoted when YAML needs it.
func quoteYAML(s string) (string, error) {
	b, err := yaml.Marshal(s)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// configTemplate is homeserver.yaml. Prose comments start with "# " and a
// capital letter; a commented-out key is "#key: default", so that
// uncommenting it changes nothing (generate_test.go checks both).
const configTemplate = `# homeserver.yaml, written by "homeserver init" on {{.Generated}}.
#
# Keys that are commented out show their default. Durations are strings
# such as "30s" or "24h". Unknown keys are errors, so that a typo is never
# silently ignored. Relative paths are under data_dir.
#
# This file holds secrets (the signing key, the registration secret, maybe
# a database password): keep it readable by the server's user only.

global:
  # The Matrix server name, the part after ":" in user ids. Required; it
  # cannot change once users exist.
  server_name: {{q .ServerName}}
  # The server's ed25519 signing key, "ed25519 <key id> <base64 seed>".
  # Other servers know this server by it: back it up and never share it.
  # Required.
  signing_key: {{q .SigningKey}}
  # Where the server keeps its files (SQLite database, embedded NATS
  # store, TLS files). Empty (the default): the directory of this file.
  #data_dir: ""
  # The room version of new rooms.
  #default_room_version: "12"

database:
  # "sqlite:PATH" (a relative path is under data_dir) or
  # "postgres://user:password@host/db" for production.
  url: {{q .DatabaseURL}}
  # Caps the PostgreSQL read pool (writes get half as many again); SQLite
  # ignores it.
  #max_open_conns: 20

bus:
{{- if .BusURL}}
  # The external NATS server (with JetStream) the components talk over.
  # Empty: NATS runs embedded in the process.
  url: {{q .BusURL}}
{{- else}}
  # An external NATS server (with JetStream), e.g. "nats://host:4222", for
  # running components in separate processes. Empty (the default): NATS
  # runs embedded in the process.
  #url: ""
{{- end}}
  # Where the embedded NATS keeps its JetStream files.
  #store_dir: nats
  # A TCP address for the embedded NATS, e.g. "127.0.0.1:4222", so that
  # other processes can join it. Empty (the default): no listener.
  #listen: ""
  # Put before every stream and subject name, so that two homeservers can
  # share a NATS cluster.
  #prefix: hs

client:
  # The address of the client-server API listener (plain HTTP: put a TLS
  # reverse proxy in front of it for anything but a local test).
  listen: {{q .ClientListen}}
  # The URL clients reach the server at, advertised in
  # /.well-known/matrix/client. Default: "http://" followed by listen.
  #public_base_url: ""
  # The "m.server" value of /.well-known/matrix/server: the host:port of
  # the federation listener as other servers see it. Empty (the default):
  # 404 there.
  #well_known_server: ""
  # The largest request body, media uploads excepted, in bytes.
  #max_request_bytes: 1048576
  registration:
    # Lets /register create accounts for holders of a registration token.
    # Default: false: only the admin CLI and the shared secret below
    # create accounts.
    #enabled: false
    # With enabled, lets anyone register with no token (open
    # registration).
    #allow_dummy: false
    # Enables the Synapse-compatible admin endpoint
    # /_synapse/admin/v1/register for holders of this secret. Delete it
    # (or set "") to disable that endpoint.
    shared_secret: {{q .SharedSecret}}
    # Guest access is not supported yet and must stay false.
    #guest_access: false
  auth:
    # How long an access token lives when the client asked for a refresh
    # token.
    #access_token_lifetime: 5m
    # How long an unused refresh token lives; "0s" means forever.
    #refresh_token_lifetime: 0s
    # The shortest accepted password.
    #password_min_length: 8
    # argon2id's memory in KiB (19 MiB, OWASP's recommended minimum) and
    # number of passes.
    #argon2_memory_kib: 19456
    #argon2_time: 2
  rate_limits:
    # A limit is a steady rate per second and a burst; per_second 0
    # disables it. Failed logins, per account and per address (one every
    # 6 s):
    #failed_login: {per_second: 0.1667, burst: 5}
    # Registration attempts per address:
    #register: {per_second: 0.1667, burst: 3}
    # All requests, per user:
    #request: {per_second: 50, burst: 200}
  # Push gateways that pushers (set by clients, e.g. Element's mobile
  # apps) may send notifications to. Pusher URLs must be https.
  push:
    # Hosts allowed ("push.example.org" or "*.example.org"); empty allows
    # every host not denied.
    #gateway_allow: []
    # Hosts refused; wins over gateway_allow.
    #gateway_deny: []
    # Let gateways resolve to loopback, private or link-local addresses.
    #allow_private_addresses: false
    # Extra CA certificates (PEM) to trust for gateways.
    #gateway_ca_file: ""
    # Time limit of one request to a gateway.
    #timeout: 10s
  presence:
    # Presence (online, unavailable, offline) shown to users who share a
    # room. Turn it off to save the writes it costs:
    #disabled: false
  encryption:
    # New private and trusted-private rooms: "encrypted" adds Megolm
    # encryption to their initial state unless the client asked for
    # other encryption; "forced" always encrypts them and tells Element
    # so (it then offers no switch); "optional" leaves it to the client.
    # Whatever this says, encryption once on cannot be turned off.
    #private_rooms: encrypted
  user_directory:
    # Find every local user, not only those who share a room with the
    # searcher or are in a public room (an organisation's directory).
    # Users who hide (im.vector.hide_profile) are never found.
    #search_all_users: false
  calls:
    # TURN servers for Element's 1:1 calls, with coturn's
    # static-auth-secret (use-auth-secret). None: /voip/turnServer is {}.
    #turn_uris: []
    #turn_shared_secret: ""
    # How long TURN credentials stay valid.
    #turn_user_lifetime: 1h
    # MatrixRTC transports for Element Call, e.g.
    # [{type: livekit, livekit_service_url: "https://rtc.example.org"}].
    #rtc_transports: []
    # The longest delay of a delayed event (MSC4140).
    #max_event_delay: 24h
    # How long an OpenID token (for Element Call's JWT service) lives.
    #openid_token_lifetime: 1h

federation:
  # The address of the federation listener (TLS), or "off" to open none.
  listen: {{q .FederationListen}}
  # The federation listener's certificate and key (PEM), relative to
  # data_dir. "homeserver init" writes a self-signed pair: other servers
  # refuse self-signed certificates, so replace it with one from a public
  # CA (or your organisation's CA trusted by your peers) before federating.
  tls_cert: {{q .TLSCert}}
  tls_key: {{q .TLSKey}}
  # How long other servers may cache the signing key.
  #key_validity: 24h
  # Closed federation: the server names this server federates with.
  # Every other server is refused (inbound) and never contacted
  # (outbound). Empty (the default): federate with nobody.
  #allowed_servers: []
  # Federate with every server instead (allowed_servers must be empty).
  #open: false
  # Servers always refused and never contacted, whatever the above say.
  #denied_servers: []
  # Let discovery (.well-known, SRV, DNS) lead to loopback or private
  # addresses; refused by default (server_addresses are always allowed).
  #allow_private_addresses: false
  # A PEM bundle of CAs trusted for federation TLS besides the system's
  # (a private federation's CA). Certificates are always checked.
  #trusted_ca_file: ""
  # Fixed addresses ("host:port") of server names, bypassing
  # .well-known and SRV discovery: for private deployments without DNS.
  #server_addresses: {}
  # Keys this server signed with before a rotation: move the old
  # global.signing_key line here as {key: "...", expired: RFC 3339 time}.
  #old_signing_keys: []
  # Signed requests accepted from each other server: a burst, then a
  # steady rate (429 M_LIMIT_EXCEEDED beyond). {per_second: 0, burst: 1}
  # turns it off.
  #origin_rate_limit: {per_second: 100, burst: 500}
  # Signed requests of each other server handled at once, and how many
  # more may wait for a turn (429 M_LIMIT_EXCEEDED beyond).
  #origin_concurrency: {concurrent: 10, max_queued: 100}

media:
  # The largest file accepted, in bytes (50 MiB).
  #max_upload_bytes: 52428800
  # Where uploaded files are kept, each once, named by its SHA-256.
  #store_dir: media
  # The bytes one user may have uploaded in total (10 GiB); -1: no quota.
  #user_quota_bytes: 10737418240
  # Media uploaded before this RFC 3339 date are also served by the
  # unauthenticated legacy endpoints. Empty: none is.
  #legacy_freeze: ""
  # Media a user may have created (async upload) and not yet uploaded.
  #max_pending_uploads: 5
  # How long a created media id waits for its upload.
  #pending_upload_lifetime: 24h
  # The largest image thumbnailed, in pixels (width times height).
  #max_image_pixels: 32000000
  # The thumbnails made on upload; other sizes are made on request.
  #thumbnail_sizes: [{width: 32, height: 32, method: crop}, {width: 96, height: 96, method: crop}, {width: 320, height: 240, method: scale}, {width: 640, height: 480, method: scale}, {width: 800, height: 600, method: scale}]
  # The clamd socket that scans uploads ("unix:/run/clamav/clamd.ctl" or
  # "tcp:127.0.0.1:3310"). Empty: no scan.
  #clamd_address: ""
  # Serves URL previews: the server fetches the pages users name, never
  # at non-public addresses unless listed in url_preview_allowed_ips.
  #url_previews: false
  # url_preview_allowed_ips: address ranges (CIDR) that previews may
  # reach although not public, e.g. [10.20.0.0/16]. Default: none.

app_services:
  # Registration files of the application services (bridges), relative
  # to data_dir: the YAML each bridge generates (id, url, as_token,
  # hs_token, sender_localpart, namespaces). Checked at start.
  #config_files: []
  # The longest wait between two attempts to push a transaction to a
  # bridge that is down (waits start at 250ms and double).
  #max_retry_interval: 1m0s
  # Bounds one request to a bridge.
  #timeout: 30s

logging:
  # One of debug, info, warn, error.
  #level: info
  # "text" or "json".
  #format: text

metrics:
  # The address of the Prometheus /metrics listener. Empty (the default):
  # none.
  #listen: ""
`

// selfSignedValidity is how long a certificate from WriteSelfSignedCert
// lasts. No peer trusts it anyway, so a long life costs nothing and spares
// a test deployment a surprise expiry.
const selfSignedValidity = 10 * 365 * 24 * time.Hour

// WriteSelfSignedCert writes a self-signed ECDSA P-256 certificate for
// serverName (its host part, without port) to certPath and its key to
// keyPath, both PEM, the key readable by the owner only (0600). It refuses
// to overwrite either file. The pair lets the federation listener start;
// other servers will not trust it.
func WriteSelfSignedCert(certPath, keyPath, serverName string) error {
	host := serverName
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return errors.New("write self-signed certificate: server name is empty")
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("write self-signed certificate: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("write self-signed certificate: serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return fmt.Errorf("write self-signed certificate: create: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("write self-signed certificate: encode key: %w", err)
	}
	// The key first: if it cannot be written, no orphan certificate is left.
	if err := writeNew(keyPath, 0o600, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}); err != nil {
		return fmt.Errorf("write self-signed certificate: %w", err)
	}
	if err := writeNew(certPath, 0o644, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
		_ = os.Remove(keyPath)
		return fmt.Errorf("write self-signed certificate: %w", err)
	}
	return nil
}

// writeNew writes b to a new file at path with mode perm, failing if the
// file exists.
func writeNew(path string, perm os.FileMode, b *pem.Block) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, b); err != nil {
		f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
