package config

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// loadGenerated parses raw strictly, then defaults and verifies it as Load
// would, with DataDir set.
func loadGenerated(t *testing.T, raw []byte) *Config {
	t.Helper()
	c, err := Parse(raw)
	if err != nil {
		t.Fatalf("parse generated config: %v\n%s", err, raw)
	}
	c.Global.DataDir = t.TempDir()
	c.Defaults()
	if err := c.Verify(); err != nil {
		t.Fatalf("verify generated config: %v\n%s", err, raw)
	}
	return c
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		name  string
		opts  GenerateOptions
		check func(t *testing.T, c *Config)
	}{
		{
			name: "defaults",
			opts: GenerateOptions{ServerName: "example.org"},
			check: func(t *testing.T, c *Config) {
				if c.Database.URL != "sqlite:homeserver.db" || c.Bus.URL != "" ||
					c.Client.Listen != "127.0.0.1:8008" || c.Federation.Listen != "127.0.0.1:8448" ||
					c.Federation.TLSCert != "federation.crt" || c.Federation.TLSKey != "federation.key" {
					t.Errorf("defaults not written: %+v %+v %+v %+v", c.Database, c.Bus, c.Client.Listen, c.Federation)
				}
			},
		},
		{
			name: "everything given",
			opts: GenerateOptions{
				ServerName: "gouv.example:8448", DatabaseURL: "postgres://hs:p%40ss@db/hs?sslmode=disable",
				BusURL: "nats://nats:4222", ClientListen: "0.0.0.0:8008", FederationListen: "off",
				TLSCert: "/etc/tls/fed.crt", TLSKey: "/etc/tls/fed.key",
			},
			check: func(t *testing.T, c *Config) {
				if c.Global.ServerName != "gouv.example:8448" || c.Database.URL != "postgres://hs:p%40ss@db/hs?sslmode=disable" ||
					c.Bus.URL != "nats://nats:4222" || c.Client.Listen != "0.0.0.0:8008" || c.Federation.Listen != "off" ||
					c.Federation.TLSCert != "/etc/tls/fed.crt" || c.Federation.TLSKey != "/etc/tls/fed.key" {
					t.Errorf("options not written: %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := Generate(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := loadGenerated(t, raw)
			if c.Global.ServerName != tt.opts.ServerName {
				t.Errorf("server_name = %q, want %q", c.Global.ServerName, tt.opts.ServerName)
			}
			if _, err := ParseSigningKey(c.Global.SigningKey); err != nil {
				t.Errorf("signing key: %v", err)
			}
			if n := len(c.Client.Registration.SharedSecret); n != 43 { // 32 bytes, unpadded base64
				t.Errorf("shared secret has %d characters, want 43", n)
			}
			if c.Client.Registration.Enabled {
				t.Error("registration is open in a generated config")
			}
			tt.check(t, c)
		})
	}
}

func TestGenerateFreshSecrets(t *testing.T) {
	a, err := Generate(GenerateOptions{ServerName: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(GenerateOptions{ServerName: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := loadGenerated(t, a), loadGenerated(t, b)
	if ca.Global.SigningKey == cb.Global.SigningKey {
		t.Error("two generated configs share a signing key")
	}
	if ca.Client.Registration.SharedSecret == cb.Client.Registration.SharedSecret {
		t.Error("two generated configs share a registration secret")
	}
}

// TestGenerateCommentedDefaults checks that every commented-out key is a
// real key and that its value is the default: uncommenting them all gives
// the same configuration.
func TestGenerateCommentedDefaults(t *testing.T) {
	// A commented-out key is "  #key: value", prose is "  # Text".
	commentedKey := regexp.MustCompile(`(?m)^(\s*)#([a-z_]+:.*)$`)
	raw, err := Generate(GenerateOptions{ServerName: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if !commentedKey.Match(raw) {
		t.Fatal("no commented-out keys found: has the template's style changed?")
	}
	uncommented := commentedKey.ReplaceAll(raw, []byte("$1$2"))
	want, got := loadGenerated(t, raw), loadGenerated(t, uncommented)
	got.Global.DataDir = want.Global.DataDir
	// The template rounds 1/6 to four places.
	for _, l := range []*RateLimit{&got.Client.RateLimits.FailedLogin, &got.Client.RateLimits.Register} {
		if l.PerSecond != 0.1667 {
			t.Errorf("rate limit per_second = %v, want 0.1667", l.PerSecond)
		}
		l.PerSecond = 1.0 / 6
	}
	if !reflect.DeepEqual(*got, *want) {
		t.Errorf("uncommenting the defaults changed the config:\n got %+v\nwant %+v", *got, *want)
	}
}

func TestGenerateRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts GenerateOptions
		want string
	}{
		{"no server name", GenerateOptions{}, "server name is required"},
		{"bad server name", GenerateOptions{ServerName: "a/b"}, "global.server_name"},
		{"bad database", GenerateOptions{ServerName: "a", DatabaseURL: "mysql://x"}, "database.url"},
		{"bad bus", GenerateOptions{ServerName: "a", BusURL: "http://x"}, "bus.url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Generate(%+v) = %v, want an error mentioning %q", tt.opts, err, tt.want)
			}
		})
	}
}

func TestParseReportsUnknownKeys(t *testing.T) {
	raw, err := Generate(GenerateOptions{ServerName: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, yaml, key string }{
		{"top level", string(raw) + "\nclinet:\n  listen: 127.0.0.1:1\n", "clinet"},
		{"nested", strings.Replace(string(raw), "database:\n", "database:\n  ulr: sqlite:x.db\n", 1), "ulr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("Parse = %v, want an error naming %q", err, tt.key)
			}
		})
	}
}

func TestVerifyReportsEveryProblem(t *testing.T) {
	c := &Config{}
	c.Global.DataDir = t.TempDir()
	c.Database.URL = "mysql://db"
	c.Logging.Level = "loud"
	c.Client.Registration.GuestAccess = true
	c.Defaults()
	err := c.Verify()
	if err == nil {
		t.Fatal("Verify accepted a config with five problems")
	}
	for _, key := range []string{"global.server_name", "global.signing_key", "database.url", "logging.level", "client.registration.guest_access"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("Verify's error does not mention %s:\n%v", key, err)
		}
	}
}

func TestWriteSelfSignedCert(t *testing.T) {
	for _, name := range []string{"example.org", "example.org:8448", "127.0.0.1:8448", "[::1]:8448"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			certPath, keyPath := filepath.Join(dir, "f.crt"), filepath.Join(dir, "f.key")
			if err := WriteSelfSignedCert(certPath, keyPath, name); err != nil {
				t.Fatal(err)
			}
			pair, err := tls.LoadX509KeyPair(certPath, keyPath)
			if err != nil {
				t.Fatalf("load the written pair: %v", err)
			}
			fi, err := os.Stat(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("key file mode = %v, want 0600", m)
			}
			cert, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			host := strings.Trim(strings.TrimSuffix(name, ":8448"), "[]")
			if err := cert.VerifyHostname(host); err != nil {
				t.Errorf("certificate is not for %s: %v", host, err)
			}
			if err := WriteSelfSignedCert(certPath, keyPath, name); err == nil {
				t.Error("WriteSelfSignedCert overwrote an existing pair")
			}
		})
	}
}
