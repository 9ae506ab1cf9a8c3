package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/matrix-gouv/homeserver/config"
)

// configFile is the name init gives the configuration in its directory.
const configFile = "homeserver.yaml"

// Names of the self-signed pair init writes, the config's defaults.
const (
	selfSignedCert = "federation.crt"
	selfSignedKey  = "federation.key"
)

// cmdInit is `homeserver init`: it writes DIR/homeserver.yaml and, unless
// --tls-cert and --tls-key are given, a self-signed pair for the
// federation listener.
func (c *cli) cmdInit(args []string) error {
	fs := c.flags("init", "init --server-name NAME --dir DIR [flags]")
	var opts config.GenerateOptions
	var dir string
	fs.StringVar(&opts.ServerName, "server-name", "", "the Matrix server name, the part after \":\" in user ids (required; it cannot change once users exist)")
	fs.StringVar(&dir, "dir", "", "the directory for homeserver.yaml and the server's data (required; created if absent)")
	fs.StringVar(&opts.DatabaseURL, "database", "", "a PostgreSQL URL, postgres://user:password@host/db (default: SQLite in DIR)")
	fs.StringVar(&opts.BusURL, "nats", "", "an external NATS server with JetStream, nats://host:4222 (default: NATS embedded in the process)")
	fs.StringVar(&opts.ClientListen, "client-listen", "127.0.0.1:8008", "the client API's listen address")
	fs.StringVar(&opts.FederationListen, "federation-listen", "127.0.0.1:8448", "the federation API's listen address (TLS), or \"off\"")
	fs.StringVar(&opts.TLSCert, "tls-cert", "", "the federation listener's certificate, PEM (default: write a self-signed one in DIR)")
	fs.StringVar(&opts.TLSKey, "tls-key", "", "the private key of --tls-cert, PEM")
	rest, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return c.badUsage(fs, "unexpected argument %q", rest[0])
	}
	if err := c.requireFlags(fs, "server-name", "dir"); err != nil {
		return err
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return c.badUsage(fs, "give both --tls-cert and --tls-key, or neither")
	}
	res, err := initDir(dir, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Wrote %s for server name %s.\n", res.config, opts.ServerName)
	if res.selfSigned {
		fmt.Fprintf(c.stdout, "Wrote a self-signed certificate for the federation listener: %s and %s.\n"+
			"Other servers will not trust it: replace it before federating.\n", res.cert, res.key)
	}
	fmt.Fprintf(c.stdout, "\nStart the server:\n    homeserver run --config %s\n"+
		"Create the first user:\n    homeserver admin --config %s create-user alice --admin\n", res.config, res.config)
	return nil
}

// initResult says what initDir wrote.
type initResult struct {
	// config is the configuration's path.
	config string
	// selfSigned says cert and key were written (and are their paths).
	selfSigned bool
	cert, key  string
}

// initDir writes dir/homeserver.yaml for opts, mode 0600, and a self-signed
// certificate and key next to it unless opts names a pair. It refuses to
// overwrite an existing configuration or key, and leaves nothing behind
// when it fails.
func initDir(dir string, opts config.GenerateOptions) (initResult, error) {
	res := initResult{config: filepath.Join(dir, configFile)}
	if _, err := os.Lstat(res.config); err == nil {
		return initResult{}, fmt.Errorf("init: %s already exists; init never overwrites a configuration "+
			"(it holds the server's signing key): remove it or choose another --dir", res.config)
	} else if !errors.Is(err, os.ErrNotExist) {
		return initResult{}, fmt.Errorf("init: %w", err)
	}
	// Paths in the configuration are relative to its directory, the
	// user's to the working directory: make the user's absolute.
	for _, p := range []*string{&opts.TLSCert, &opts.TLSKey} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return initResult{}, fmt.Errorf("init: %w", err)
			}
			*p = abs
		}
	}
	raw, err := config.Generate(opts)
	if err != nil {
		return initResult{}, fmt.Errorf("init: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return initResult{}, fmt.Errorf("init: create directory: %w", err)
	}
	if opts.TLSCert == "" {
		res.selfSigned = true
		res.cert, res.key = filepath.Join(dir, selfSignedCert), filepath.Join(dir, selfSignedKey)
		for _, p := range []string{res.cert, res.key} {
			if _, err := os.Lstat(p); err == nil {
				return initResult{}, fmt.Errorf("init: %s already exists: remove it, or pass --tls-cert and --tls-key", p)
			}
		}
		if err := config.WriteSelfSignedCert(res.cert, res.key, opts.ServerName); err != nil {
			return initResult{}, fmt.Errorf("init: %w", err)
		}
	}
	if err := writeConfig(res.config, raw); err != nil {
		if res.selfSigned {
			_ = os.Remove(res.cert)
			_ = os.Remove(res.key)
		}
		return initResult{}, fmt.Errorf("init: %w", err)
	}
	return res, nil
}

// writeConfig writes raw to a new file at path readable by its owner only.
func writeConfig(path string, raw []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write configuration: %w", err)
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("write configuration: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write configuration: %w", err)
	}
	return nil
}
