package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/cmd/homeserver/app"
	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/memtrim"
)

// shutdownTimeout bounds a graceful stop: in-flight requests get this long
// to finish before they are cut.
const shutdownTimeout = 30 * time.Second

// cmdRun is `homeserver run`: it runs the configured server, or the
// components --components lists, until SIGINT or SIGTERM.
func (c *cli) cmdRun(ctx context.Context, args []string) error {
	fs := c.flags("run", "run --config FILE [--components LIST]")
	cfgPath := fs.String("config", "", "the configuration file (required)")
	list := fs.String("components", "", "comma-separated components to run in this process, of: client, roomserver, federation, media, appservices (default: all)")
	rest, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return c.badUsage(fs, "unexpected argument %q", rest[0])
	}
	if err := c.requireFlags(fs, "config"); err != nil {
		return err
	}
	var components []string
	if *list != "" {
		if components, err = app.ParseComponents(*list); err != nil {
			return c.badUsage(fs, "--components: %v", err)
		}
	}
	return c.serve(ctx, *cfgPath, components, nil)
}

// serve loads the configuration at cfgPath, runs components (nil: all)
// until ctx ends, SIGINT or SIGTERM arrives or a listener fails, then
// stops gracefully within shutdownTimeout. started, when not nil, is
// called once the server serves.
func (c *cli) serve(ctx context.Context, cfgPath string, components []string, started func(*app.App)) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Logging, c.stderr)
	if err != nil {
		return err
	}
	quietLibraries(log.Logger)
	a, err := app.New(cfg, app.Options{Components: components, Log: log})
	if err != nil {
		return err
	}
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	if err := a.Start(ctx); err != nil {
		return err
	}
	if started != nil {
		started(a)
	}
	// The process's memory, not the App's: tests run many Apps in one.
	trimCtx, stopTrim := context.WithCancel(ctx)
	defer stopTrim()
	go memtrim.Run(trimCtx, log.WithField(httputil.FieldComponent, "memtrim"))
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping (a second signal stops at once)")
	case runErr = <-a.Errors():
		log.WithError(runErr).Error("stopping after a listener failed")
	}
	// From here a second signal kills the process, for an impatient admin.
	stopSignals()
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := a.Stop(stopCtx); err != nil {
		return errors.Join(runErr, fmt.Errorf("stop: %w", err))
	}
	return runErr
}

// newLogger returns the root logger the configuration asks for, writing
// to w.
func newLogger(cfg config.Logging, w io.Writer) (*logrus.Entry, error) {
	l := logrus.New()
	l.SetOutput(w)
	level, err := logrus.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("logging.level: %w", err)
	}
	l.SetLevel(level)
	if cfg.Format == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	return logrus.NewEntry(l), nil
}

// quietLibraries points the standard logrus logger, which libraries log
// through (gomatrixserverlib reports every remote join's signature checks
// at info), at the server's output and format, showing warnings and
// errors only, or less when the configured level is higher.
func quietLibraries(l *logrus.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(l.Out)
	std.SetFormatter(l.Formatter)
	std.SetLevel(min(l.GetLevel(), logrus.WarnLevel))
}
