package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/term"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/storage"
)

// maxPasswordBytes caps a password read from a file or standard input.
const maxPasswordBytes = 4096

// cmdAdmin is `homeserver admin`: account administration straight on the
// database, through the client component's admin methods. It opens no bus
// and no listener, so it works while the server runs.
func (c *cli) cmdAdmin(ctx context.Context, args []string) error {
	fs := c.flags("admin", "admin --config FILE COMMAND [ARGS]\n\nCommands:\n"+
		"  create-user NAME [--admin] [--password-file F]\n"+
		"  reset-password USER [--password-file F]\n"+
		"  deactivate USER\n"+
		"  create-registration-token TOKEN [--uses N]\n\n"+
		"USER is a localpart (alice) or a user id (@alice:example.org). The password\n"+
		"is read from --password-file, else prompted on a terminal, else read from\n"+
		"standard input; never from the command line.")
	cfgPath := fs.String("config", "", "the configuration file (required)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return c.badUsage(fs, "missing command")
	}
	switch rest[0] {
	case "create-user":
		return c.adminCreateUser(ctx, cfgPath, rest[1:])
	case "reset-password":
		return c.adminResetPassword(ctx, cfgPath, rest[1:])
	case "deactivate":
		return c.adminDeactivate(ctx, cfgPath, rest[1:])
	case "create-registration-token":
		return c.adminCreateRegistrationToken(ctx, cfgPath, rest[1:])
	default:
		return c.badUsage(fs, "unknown command %q", rest[0])
	}
}

// adminFlags returns the flag set of an admin command, which also takes
// --config (so that it may follow the command).
func (c *cli) adminFlags(name, synopsis string, cfgPath *string) *flag.FlagSet {
	fs := c.flags("admin "+name, "admin --config FILE "+synopsis)
	fs.StringVar(cfgPath, "config", *cfgPath, "the configuration file (required)")
	return fs
}

// oneArg parses args with fs and returns its one positional argument.
func (c *cli) oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	rest, err := c.parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(rest) != 1 {
		return "", c.badUsage(fs, "want one %s, got %d arguments", what, len(rest))
	}
	if err := c.requireFlags(fs, "config"); err != nil {
		return "", err
	}
	return rest[0], nil
}

func (c *cli) adminCreateUser(ctx context.Context, cfgPath *string, args []string) error {
	fs := c.adminFlags("create-user", "create-user NAME [--admin] [--password-file F]", cfgPath)
	admin := fs.Bool("admin", false, "make the user a server admin")
	pwFile := fs.String("password-file", "", "read the password from this file (default: prompt on a terminal, else read standard input)")
	name, err := c.oneArg(fs, args, "user name")
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	localpart, err := toLocalpart(name, cfg.Global.ServerName)
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	password, err := c.readPassword(*pwFile)
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return c.withHomeserver(ctx, cfg, func(hs *homeserver.Component) error {
		userID, err := hs.CreateUser(ctx, localpart, password, *admin)
		if err != nil {
			return fmt.Errorf("create user %s: %w", localpart, err)
		}
		kind := "user"
		if *admin {
			kind = "admin"
		}
		fmt.Fprintf(c.stdout, "Created %s %s.\n", kind, userID)
		return nil
	})
}

func (c *cli) adminResetPassword(ctx context.Context, cfgPath *string, args []string) error {
	fs := c.adminFlags("reset-password", "reset-password USER [--password-file F]", cfgPath)
	pwFile := fs.String("password-file", "", "read the password from this file (default: prompt on a terminal, else read standard input)")
	user, err := c.oneArg(fs, args, "user")
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	password, err := c.readPassword(*pwFile)
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	return c.withHomeserver(ctx, cfg, func(hs *homeserver.Component) error {
		userID, err := hs.ResetPassword(ctx, user, password)
		if err != nil {
			return fmt.Errorf("reset password of %s: %w", user, err)
		}
		fmt.Fprintf(c.stdout, "Reset the password of %s and logged out all its devices.\n", userID)
		return nil
	})
}

func (c *cli) adminDeactivate(ctx context.Context, cfgPath *string, args []string) error {
	fs := c.adminFlags("deactivate", "deactivate USER", cfgPath)
	user, err := c.oneArg(fs, args, "user")
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	return c.withHomeserver(ctx, cfg, func(hs *homeserver.Component) error {
		userID, err := hs.Deactivate(ctx, user)
		if err != nil {
			return fmt.Errorf("deactivate %s: %w", user, err)
		}
		fmt.Fprintf(c.stdout, "Deactivated %s and logged out all its devices.\n", userID)
		return nil
	})
}

func (c *cli) adminCreateRegistrationToken(ctx context.Context, cfgPath *string, args []string) error {
	fs := c.adminFlags("create-registration-token", "create-registration-token TOKEN [--uses N]", cfgPath)
	uses := fs.Int("uses", 0, "how many registrations the token allows (0: unlimited)")
	token, err := c.oneArg(fs, args, "token")
	if err != nil {
		return err
	}
	if *uses < 0 {
		return c.badUsage(fs, "--uses must be 0 (unlimited) or more")
	}
	if !validRegistrationToken(token) {
		return c.badUsage(fs, "a token is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '~' and '-'")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	return c.withHomeserver(ctx, cfg, func(hs *homeserver.Component) error {
		if err := hs.CreateRegistrationToken(ctx, token, *uses); err != nil {
			return fmt.Errorf("create registration token: %w", err)
		}
		limit := "unlimited uses"
		if *uses > 0 {
			limit = fmt.Sprintf("%d uses", *uses)
		}
		fmt.Fprintf(c.stdout, "Created the registration token (%s).\n", limit)
		if !cfg.Client.Registration.Enabled {
			fmt.Fprintln(c.stdout, "Registration is closed: set client.registration.enabled: true and restart for the token to work.")
		}
		return nil
	})
}

// validRegistrationToken says token has the spec's form: 1 to 64
// characters of [A-Za-z0-9._~-].
func validRegistrationToken(token string) bool {
	if token == "" || len(token) > 64 {
		return false
	}
	for _, r := range token {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._~-", r)
		if !ok {
			return false
		}
	}
	return true
}

// withHomeserver opens the database of cfg (applying pending migrations),
// builds the client component on it without starting it, runs fn with
// it and closes the database.
func (c *cli) withHomeserver(ctx context.Context, cfg *config.Config, fn func(*homeserver.Component) error) error {
	log, err := newLogger(cfg.Logging, c.stderr)
	if err != nil {
		return err
	}
	// Only problems are worth a line in an interactive command.
	if log.Logger.GetLevel() > logrus.WarnLevel {
		log.Logger.SetLevel(logrus.WarnLevel)
	}
	db, err := storage.Open(ctx, cfg.Database.URL, storage.Options{
		DataDir:      cfg.Global.DataDir,
		MaxOpenConns: 2,
		Log:          log.WithField(httputil.FieldComponent, "storage"),
	})
	if err != nil {
		return err
	}
	defer db.Close()
	hs, err := homeserver.New(homeserver.Deps{
		Global: &cfg.Global, Config: &cfg.Client, DB: db,
		Log: log.WithField(httputil.FieldComponent, "client"),
	})
	if err != nil {
		return fmt.Errorf("build client component: %w", err)
	}
	return fn(hs)
}

// toLocalpart returns the localpart of name, a localpart or a user id of
// serverName.
func toLocalpart(name, serverName string) (string, error) {
	if !strings.HasPrefix(name, "@") {
		return name, nil
	}
	local, server, ok := strings.Cut(name[1:], ":")
	if !ok || local == "" {
		return "", fmt.Errorf("%q is not a user id (@localpart:%s)", name, serverName)
	}
	if server != serverName {
		return "", fmt.Errorf("%s is not a user of this server (%s)", name, serverName)
	}
	return local, nil
}

// readPassword reads the new password from file when given (without its
// trailing newline); else, on a terminal, prompts for it twice without
// echo; else reads standard input (without its trailing newline). An
// empty password is an error.
func (c *cli) readPassword(file string) (string, error) {
	var pw string
	switch {
	case file != "":
		raw, err := readLimited(file)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		pw = trimNewline(raw)
	case c.stdinTerminal():
		fd := int(c.stdin.(*os.File).Fd())
		fmt.Fprint(c.stderr, "Password: ")
		first, err := term.ReadPassword(fd)
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(c.stderr, "Password again: ")
		second, err := term.ReadPassword(fd)
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(first, second) {
			return "", errors.New("the passwords do not match")
		}
		pw = string(first)
	default:
		raw, err := io.ReadAll(io.LimitReader(c.stdin, maxPasswordBytes+1))
		if err != nil {
			return "", fmt.Errorf("read password from standard input: %w", err)
		}
		if len(raw) > maxPasswordBytes {
			return "", fmt.Errorf("password on standard input is longer than %d bytes", maxPasswordBytes)
		}
		pw = trimNewline(raw)
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}

// stdinTerminal says standard input is a terminal, where a password is
// prompted for rather than read.
func (c *cli) stdinTerminal() bool {
	f, ok := c.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readLimited reads a password file, refusing one over maxPasswordBytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxPasswordBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxPasswordBytes {
		return nil, fmt.Errorf("%s is longer than %d bytes", path, maxPasswordBytes)
	}
	return raw, nil
}

// trimNewline drops one trailing "\n" or "\r\n": the end of the line an
// editor or echo adds, not part of the password.
func trimNewline(b []byte) string {
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		return t
	}
	return strings.TrimSuffix(s, "\n")
}
