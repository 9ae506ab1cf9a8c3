// Package accounts creates the load tool's users on any homeserver,
// through the standard APIs only: Synapse-compatible shared-secret
// registration (/_synapse/admin/v1/register), /register with a
// registration token (m.login.registration_token), or open registration
// (m.login.dummy). Each user is then logged in with its password, as a
// person's client would, which gives it a fresh device.
package accounts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/sync/errgroup"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// Names of the setup series a Creator records.
const (
	SeriesRegister = "setup.register"
	SeriesLogin    = "setup.login"
)

// authTypeRegistrationToken is the UIA stage of registration tokens
// (spec v1.2), which mautrix does not name.
const authTypeRegistrationToken mautrix.AuthType = "m.login.registration_token"

// deviceName is the display name of every device the tool logs in.
const deviceName = "loadtest"

// Config says where and how to create users.
type Config struct {
	// HS is the homeserver's base URL.
	HS string
	// HTTP is the client every user shares.
	HTTP *http.Client
	// SharedSecret, when set, registers through the shared-secret admin
	// endpoint.
	SharedSecret string
	// RegistrationToken, when set (and SharedSecret is not), registers
	// through /register with m.login.registration_token. With neither,
	// /register must allow m.login.dummy (open registration).
	RegistrationToken string
	// Prefix starts every localpart; users are Prefix-0, Prefix-1, …
	// Empty means a random "lt" prefix, fresh for each Creator.
	Prefix string
	// Concurrency bounds registrations and logins in flight. Zero means 8.
	Concurrency int
}

// User is a logged-in user: a mautrix client with its credentials set.
type User struct {
	*mautrix.Client
	// Localpart is the user's localpart; Password its password.
	Localpart, Password string
}

// Creator creates users. It is safe for concurrent use.
type Creator struct {
	cfg      Config
	rec      *stats.Recorder
	password string
	// next is the number of the next user.
	next atomic.Int64
}

// New returns a Creator for cfg that records registration and login
// latencies in rec's setup series.
func New(cfg Config, rec *stats.Recorder) (*Creator, error) {
	if cfg.HTTP == nil {
		return nil, errors.New("accounts: no HTTP client")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "lt" + randomHex(3)
	}
	return &Creator{cfg: cfg, rec: rec, password: "lt-" + randomHex(12)}, nil
}

// Prefix returns the localpart prefix of this Creator's users.
func (c *Creator) Prefix() string { return c.cfg.Prefix }

// Method names how users are registered, for reports.
func (c *Creator) Method() string {
	switch {
	case c.cfg.SharedSecret != "":
		return "shared-secret"
	case c.cfg.RegistrationToken != "":
		return "registration-token"
	}
	return "open"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// Create registers n new users and logs each in, at most Concurrency at a
// time, retrying requests the server rate-limits. It returns the users in
// creation order, or the first failure.
func (c *Creator) Create(ctx context.Context, n int) ([]*User, error) {
	users := make([]*User, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, c.cfg.Concurrency))
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		localpart := fmt.Sprintf("%s-%d", c.cfg.Prefix, c.next.Add(1)-1)
		g.Go(func() (err error) {
			users[i], err = c.createOne(gctx, localpart)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create users: %w", err)
	}
	return users, nil
}

func (c *Creator) createOne(ctx context.Context, localpart string) (*User, error) {
	if err := c.Register(ctx, localpart); err != nil {
		return nil, err
	}
	return c.Login(ctx, localpart, c.password)
}

// Register creates the account localpart with the Creator's password.
func (c *Creator) Register(ctx context.Context, localpart string) error {
	series := c.rec.SetupSeries(SeriesRegister)
	cli, err := matrix.NewClient(c.cfg.HS, c.cfg.HTTP)
	if err != nil {
		return err
	}
	err = matrix.RetryLimited(ctx, func() error {
		start := time.Now()
		var err error
		if c.cfg.SharedSecret != "" {
			err = c.registerSharedSecret(ctx, cli, localpart)
		} else {
			err = c.registerUIA(ctx, cli, localpart)
		}
		if err != nil {
			series.Fail(start, matrix.ErrCode(err))
			return err
		}
		series.Observe(start, time.Since(start))
		return nil
	})
	if err != nil {
		if c.Method() == "open" && matrix.ErrCode(err) == "M_FORBIDDEN" {
			return fmt.Errorf("register %s (open registration, refused): %w; give --shared-secret or --registration-token", localpart, err)
		}
		return fmt.Errorf("register %s (%s): %w", localpart, c.Method(), err)
	}
	return nil
}

func (c *Creator) registerSharedSecret(ctx context.Context, cli *mautrix.Client, localpart string) error {
	admin := &synapseadmin.Client{Client: cli}
	_, err := admin.SharedSecretRegister(ctx, c.cfg.SharedSecret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart, Password: c.password, InhibitLogin: true,
	})
	return matrix.CheckImplemented(err, "shared-secret registration")
}

// registerUIA runs /register's user-interactive auth: the first request
// gets the flows and a session, then each stage of a flow the tool can
// complete (m.login.registration_token with a token, m.login.dummy) is
// sent in turn.
func (c *Creator) registerUIA(ctx context.Context, cli *mautrix.Client, localpart string) error {
	body := map[string]any{
		"username": localpart, "password": c.password,
		"inhibit_login": true, "initial_device_display_name": deviceName,
	}
	url := cli.BuildClientURL("v3", "register")
	for range 5 { // a flow has at most two stages the tool can do
		raw, err := cli.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPost, URL: url, RequestJSON: body})
		if err == nil {
			return nil
		}
		var herr mautrix.HTTPError
		if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode != http.StatusUnauthorized ||
			(herr.RespError != nil && herr.RespError.ErrCode != "") {
			return matrix.CheckImplemented(err, "registration")
		}
		var uia mautrix.RespUserInteractive
		if jerr := json.Unmarshal(raw, &uia); jerr != nil {
			return fmt.Errorf("read the registration's auth flows: %w", jerr)
		}
		stage, err := c.nextStage(uia)
		if err != nil {
			return err
		}
		auth := map[string]any{"type": stage, "session": uia.Session}
		if stage == authTypeRegistrationToken {
			auth["token"] = c.cfg.RegistrationToken
		}
		body["auth"] = auth
	}
	return errors.New("registration did not complete after 5 auth stages")
}

// nextStage picks the first stage not yet completed of the first flow
// made only of stages the tool can complete.
func (c *Creator) nextStage(uia mautrix.RespUserInteractive) (mautrix.AuthType, error) {
	can := []mautrix.AuthType{mautrix.AuthTypeDummy}
	if c.cfg.RegistrationToken != "" {
		can = append(can, authTypeRegistrationToken)
	}
	var offered []string
	for _, f := range uia.Flows {
		offered = append(offered, fmt.Sprint(f.Stages))
		ok := len(f.Stages) > 0
		for _, s := range f.Stages {
			ok = ok && slices.Contains(can, s)
		}
		if !ok {
			continue
		}
		for _, s := range f.Stages {
			if !slices.Contains(uia.Completed, string(s)) {
				return s, nil
			}
		}
	}
	hint := "give --shared-secret, or --registration-token"
	if c.cfg.RegistrationToken != "" {
		hint = "give --shared-secret"
	}
	return "", fmt.Errorf("the server offers no registration flow the tool can complete (offered: %v): %s", offered, hint)
}

// Login logs localpart in with password on a new device and returns the
// user.
func (c *Creator) Login(ctx context.Context, localpart, password string) (*User, error) {
	series := c.rec.SetupSeries(SeriesLogin)
	cli, err := matrix.NewClient(c.cfg.HS, c.cfg.HTTP)
	if err != nil {
		return nil, err
	}
	err = matrix.RetryLimited(ctx, func() error {
		start := time.Now()
		_, err := cli.Login(ctx, &mautrix.ReqLogin{
			Type:                     mautrix.AuthTypePassword,
			Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
			Password:                 password,
			InitialDeviceDisplayName: deviceName,
			StoreCredentials:         true,
		})
		if err != nil {
			series.Fail(start, matrix.ErrCode(err))
			return err
		}
		series.Observe(start, time.Since(start))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("log in %s: %w", localpart, matrix.CheckImplemented(err, "password login"))
	}
	return &User{Client: cli, Localpart: localpart, Password: password}, nil
}

// NewDevice logs u in again: the same user on one more device.
func (c *Creator) NewDevice(ctx context.Context, u *User) (*User, error) {
	return c.Login(ctx, u.Localpart, u.Password)
}

// UserIDs returns the users' IDs.
func UserIDs(users []*User) []id.UserID {
	out := make([]id.UserID, len(users))
	for i, u := range users {
		out[i] = u.UserID
	}
	return out
}
