// Package app builds the homeserver's components from a configuration,
// connects them (database, bus, the client and federation listeners) and
// runs them: the whole server, or the components one process of a split
// deployment runs.
//
// It is the top of the dependency order: only cmd/homeserver and the
// integration tests in tests/ import it, and it is the one place that
// imports every component. It is a package of its own, rather than part
// of main, so that tests can start a whole server in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Component names, as Options.Components and `run --components` take them.
const (
	Client      = "client"
	Roomserver  = "roomserver"
	Federation  = "federation"
	Media       = "media"
	Appservices = "appservices"
)

// AllComponents returns every component name, in the order they start
// (and the reverse of the order they stop).
func AllComponents() []string {
	return []string{Client, Roomserver, Federation, Media, Appservices}
}

// ParseComponents reads a comma-separated list of component names
// ("client,media"), ignoring spaces and empty items. It fails naming every
// unknown name, and when the list names no component.
func ParseComponents(list string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if err := checkComponents(names); err != nil {
		return nil, err
	}
	return names, nil
}

// checkComponents fails naming every unknown name in names, or when names
// is empty.
func checkComponents(names []string) error {
	if len(names) == 0 {
		return errors.New("no components given")
	}
	known := map[string]bool{}
	for _, n := range AllComponents() {
		known[n] = true
	}
	var unknown []string
	for _, n := range names {
		if !known[n] {
			unknown = append(unknown, fmt.Sprintf("%q", n))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown component %s (known: %s)", strings.Join(unknown, ", "), strings.Join(AllComponents(), ", "))
	}
	return nil
}

// Options tune New.
type Options struct {
	// Components lists the components to run, by the names above. Nil
	// runs them all.
	Components []string
	// Log is the root logger; each component gets it tagged with
	// component=<name>. Nil logs at info level to stderr.
	Log *logrus.Entry
}

// stopTimeout bounds the clean-up after a failed Start, whose own context
// may be the reason it failed.
const stopTimeout = 30 * time.Second

// lifecycle states of an App.
const (
	stateNew = iota
	stateStarted
	stateStopped
)

// App is a running homeserver process: its database and bus connections,
// the components it runs and its listeners. Build it with New, then call
// Start once and Stop once; an App cannot be restarted (build a new one on
// the same configuration instead). Its methods are safe for concurrent use.
type App struct {
	cfg *config.Config
	log *logrus.Entry
	run map[string]bool
	// serveErr receives the first failure of each listener after Start.
	serveErr chan error
	// serving counts the listeners' Serve goroutines; Stop waits for them.
	serving sync.WaitGroup

	// mu guards state and every field below it, which Start sets and Stop
	// releases. Stop holds it while it shuts down.
	mu    sync.Mutex
	state int
	db    *storage.DB
	bus   *bus.Bus
	// parts are the components (and bus services) started so far, in
	// start order.
	parts []part
	// client and federation are the listeners; nil when not opened.
	client, federation *listener
}

// part is something Start started and Stop stops: a component, or a
// service a component offers on the bus.
type part struct {
	name  string
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
}

// New checks opts and returns an App ready to Start. It does no I/O. cfg
// must have its defaults applied and be verified (config.Load does both);
// the App keeps it and must be its only user while it runs.
func New(cfg *config.Config, opts Options) (*App, error) {
	if cfg == nil {
		return nil, errors.New("new app: no configuration")
	}
	names := opts.Components
	if names == nil {
		names = AllComponents()
	}
	if err := checkComponents(names); err != nil {
		return nil, fmt.Errorf("new app: %w", err)
	}
	run := map[string]bool{}
	for _, n := range names {
		run[n] = true
	}
	log := opts.Log
	if log == nil {
		log = logrus.NewEntry(logrus.New())
	}
	return &App{cfg: cfg, log: log, run: run, serveErr: make(chan error, 2)}, nil
}

// Start binds the listeners, opens the database (applying migrations) and
// the bus, builds and starts the components in order, and then serves
// requests. When it fails, it releases whatever it had opened and the App
// is spent. ctx bounds the start-up only, not the life of the server.
func (a *App) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state != stateNew {
		return errors.New("start: an App can be started only once")
	}
	a.state = stateStarted
	if err := a.startLocked(ctx); err != nil {
		a.state = stateStopped
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		if stopErr := a.stopLocked(stopCtx); stopErr != nil {
			a.log.WithError(stopErr).Warn("clean-up after a failed start")
		}
		return err
	}
	a.log.WithFields(logrus.Fields{
		"server_name":    a.cfg.Global.ServerName,
		"components":     strings.Join(a.runningLocked(), ","),
		"client_url":     a.urlLocked(a.client),
		"federation_url": a.urlLocked(a.federation),
	}).Info("homeserver started")
	return nil
}

func (a *App) startLocked(ctx context.Context) error {
	// Bind first: a port in use fails the start before anything heavier.
	if err := a.listenLocked(); err != nil {
		return err
	}
	db, err := storage.Open(ctx, a.cfg.Database.URL, storage.Options{
		DataDir:      a.cfg.Global.DataDir,
		MaxOpenConns: a.cfg.Database.MaxOpenConns,
		Log:          a.log.WithField(httputil.FieldComponent, "storage"),
	})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	a.db = db
	b, err := bus.Open(ctx, a.cfg.Bus, &a.cfg.Global, a.log.WithField(httputil.FieldComponent, "bus"))
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	a.bus = b
	built, err := a.buildLocked()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	for _, p := range built.parts {
		if err := p.start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", p.name, err)
		}
		a.parts = append(a.parts, p)
	}
	a.serveLocked(built)
	return nil
}

// runningLocked lists the components the App runs, in start order.
func (a *App) runningLocked() []string {
	var names []string
	for _, n := range AllComponents() {
		if a.run[n] {
			names = append(names, n)
		}
	}
	return names
}

// Stop shuts the App down gracefully: the listeners stop accepting and
// in-flight requests finish (until ctx ends, when they are cut), then the
// components stop in the reverse order of their start, then the bus and
// the database close. It returns every error it met. Stop before Start,
// or a second Stop, does nothing.
func (a *App) Stop(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state != stateStarted {
		return nil
	}
	a.state = stateStopped
	err := a.stopLocked(ctx)
	if err != nil {
		a.log.WithError(err).Warn("homeserver stopped with errors")
	} else {
		a.log.Info("homeserver stopped")
	}
	return err
}

// stopLocked releases whatever Start opened, so far as it got.
func (a *App) stopLocked(ctx context.Context) error {
	var errs []error
	errs = append(errs, a.shutdownListenersLocked(ctx)...)
	for i := len(a.parts) - 1; i >= 0; i-- {
		p := a.parts[i]
		if err := p.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", p.name, err))
		}
	}
	a.parts = nil
	if a.bus != nil {
		if err := a.bus.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close bus: %w", err))
		}
		a.bus = nil
	}
	if a.db != nil {
		if err := a.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
		a.db = nil
	}
	return errors.Join(errs...)
}

// Errors receives an error when a listener fails while the App runs (not
// when Stop closes it); `homeserver run` exits then rather than linger
// half-deaf. It is never closed.
func (a *App) Errors() <-chan error { return a.serveErr }

// ClientURL returns the base URL of the client listener as bound
// ("http://127.0.0.1:8008", the real port when the configuration asked for
// port 0), or "" when the App opened none (not started, or neither the
// client nor the media component runs). It keeps answering after Stop, so
// that a test can restart a server on the same address. An unspecified
// listen address (0.0.0.0) is reported as loopback, which is reachable.
func (a *App) ClientURL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.urlLocked(a.client)
}

// FederationURL returns the base URL of the TLS federation listener as
// bound ("https://127.0.0.1:8448"), or "" when the App opened none (not
// started, federation not run, or federation.listen "off"). Like
// ClientURL, it keeps answering after Stop.
func (a *App) FederationURL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.urlLocked(a.federation)
}
