// Command loadtest measures a Matrix homeserver the way its operators
// need: how fast messages arrive, how many a second, what a first sync,
// a join, key exchange or media cost, and how much memory and CPU the
// server uses meanwhile. It speaks only the client-server API, so it
// measures this project's server, Synapse or any other on the same work.
//
//	loadtest --hs URL [--shared-secret S | --registration-token T] [--out DIR]
//	         [--pid PID] [--i-own-this-server] SCENARIO [scenario flags]
//
// It creates its own users (localparts lt<random>-N), prints a table,
// and writes results.json, index.html and an SVG histogram per latency
// metric to --out. See "loadtest -h" and "loadtest SCENARIO -h".
//
// The packages below it, in dependency order: internal/stats
// (percentiles, histograms, the recorder), internal/procmon (/proc),
// internal/matrix (errcodes, HTTP), internal/progress, internal/accounts
// (user creation), internal/report (table, JSON, SVG) and
// internal/scenario (the scenarios).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"maunium.net/go/mautrix"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/accounts"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/procmon"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/progress"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/report"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/scenario"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// Exit statuses.
const (
	exitOK = 0
	// exitFailed is a run that could not be made, or failed.
	exitFailed = 1
	// exitUsage is a bad command line.
	exitUsage = 2
	// exitSkipped is a scenario the server cannot serve: it answered
	// M_UNRECOGNIZED to an endpoint the scenario needs.
	exitSkipped = 3
	// exitStopped is a run stopped early by the operator (its report is
	// written, but covers less than was asked).
	exitStopped = 130
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, signals: sigs, tty: progress.IsTerminal(os.Stderr)}
	os.Exit(c.run(os.Args[1:]))
}

// cli holds the command's streams and its signals, so that tests can run
// it.
type cli struct {
	stdout, stderr io.Writer
	// signals delivers Ctrl-C: the first stops the run gracefully, the
	// second aborts requests in flight. Nil: no signals.
	signals <-chan os.Signal
	// tty says stderr is a terminal (the progress line redraws in place).
	tty bool
	// progressInterval overrides the progress line's interval (tests).
	progressInterval time.Duration
}

// options are the flags that come before the scenario's name.
type options struct {
	hs, sharedSecret, registrationToken string
	out, prefix                         string
	pid                                 int
	ownServer                           bool
	setupConcurrency                    int
	requestTimeout                      time.Duration
}

const usageHead = `Usage: loadtest --hs URL [flags] SCENARIO [scenario flags]

Measures a Matrix homeserver through the client-server API. Users are
created with --shared-secret (Synapse-compatible /_synapse/admin/v1/register),
--registration-token, or else open registration (m.login.dummy).

Scenarios (run "loadtest [flags] SCENARIO -h" for theirs):
`

func (c *cli) usage(fs *flag.FlagSet) func() {
	return func() {
		fmt.Fprint(c.stderr, usageHead)
		for _, n := range scenario.Names() {
			s, _ := scenario.New(n)
			fmt.Fprintf(c.stderr, "  %-13s %s\n", n, s.Describe())
		}
		fmt.Fprint(c.stderr, "\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(c.stderr, "\nExit status: 0 done, 1 failed, 2 bad usage, 3 the server does not implement\nwhat the scenario needs, 130 stopped early (the report is still written).\n")
	}
}

// run runs the command line args and returns the exit status.
func (c *cli) run(args []string) int {
	var o options
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = c.usage(fs)
	fs.StringVar(&o.hs, "hs", "", "the homeserver's client API base URL, e.g. http://127.0.0.1:8008 (required)")
	fs.StringVar(&o.sharedSecret, "shared-secret", "", "register users with this registration shared secret")
	fs.StringVar(&o.registrationToken, "registration-token", "", "register users through /register with this token")
	fs.StringVar(&o.out, "out", "", "directory for results.json, index.html and the histograms (default: loadtest-SCENARIO-TIME)")
	fs.IntVar(&o.pid, "pid", 0, "sample this local process's memory and CPU from /proc every second (the server's PID)")
	fs.BoolVar(&o.ownServer, "i-own-this-server", false, "allow a target that is not a loopback address")
	fs.StringVar(&o.prefix, "user-prefix", "", "localpart prefix of the users created (default: lt and random hex)")
	fs.IntVar(&o.setupConcurrency, "setup-concurrency", 8, "setup requests (registrations, logins, rooms) in flight")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 2*time.Minute, "give up on any request after this long")
	if err := fs.Parse(args); err != nil {
		return exitUsage // flag has said why, or printed the help
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(c.stderr, "loadtest: no scenario given")
		fs.Usage()
		return exitUsage
	}
	name := fs.Arg(0)
	sc, ok := scenario.New(name)
	if !ok {
		fmt.Fprintf(c.stderr, "loadtest: unknown scenario %q (known: %s)\n", name, strings.Join(scenario.Names(), ", "))
		return exitUsage
	}
	sfs := flag.NewFlagSet("loadtest "+name, flag.ContinueOnError)
	sfs.SetOutput(c.stderr)
	sfs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: loadtest --hs URL [flags] %s [flags]\n\n%s.\n\nFlags:\n", name, sc.Describe())
		sfs.PrintDefaults()
	}
	sc.Flags(sfs)
	if err := sfs.Parse(fs.Args()[1:]); err != nil {
		return exitUsage
	}
	if sfs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "loadtest %s: unexpected argument %q (global flags go before the scenario)\n", name, sfs.Arg(0))
		return exitUsage
	}
	if err := sc.Check(); err != nil {
		fmt.Fprintf(c.stderr, "loadtest %s: %v\n", name, err)
		return exitUsage
	}
	switch {
	case o.hs == "":
		fmt.Fprintln(c.stderr, "loadtest: --hs is required")
		return exitUsage
	case o.sharedSecret != "" && o.registrationToken != "":
		fmt.Fprintln(c.stderr, "loadtest: give --shared-secret or --registration-token, not both")
		return exitUsage
	case o.setupConcurrency < 1:
		fmt.Fprintln(c.stderr, "loadtest: --setup-concurrency must be positive")
		return exitUsage
	}
	if _, err := CheckTarget(o.hs, o.ownServer); err != nil {
		fmt.Fprintf(c.stderr, "loadtest: %v\n", err)
		return exitUsage
	}
	return c.execute(o, sc)
}

// CheckTarget parses the homeserver URL and refuses, unless own is set,
// any host that is not a loopback address (127.0.0.0/8, ::1) or
// localhost: a load test is an attack on a server its operator did not
// agree to. Host names other than localhost are refused without being
// resolved, since a name can resolve elsewhere at the next lookup.
func CheckTarget(raw string, own bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--hs: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--hs %q: want http://host[:port] or https://host[:port]", raw)
	}
	if own {
		return u, nil
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return u, nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return u, nil
	}
	return nil, fmt.Errorf("refusing to load %s: it is not a loopback address (127.0.0.0/8, ::1, localhost); "+
		"pass --i-own-this-server to load a server you are responsible for", u.Host)
}

// execute runs sc and reports.
func (c *cli) execute(o options, sc scenario.Scenario) int {
	started := time.Now()
	rep := report.New(sc.Name(), o.hs, started)
	rep.Params = sc.Params()
	httpc := matrix.NewHTTPClient(o.requestTimeout)
	// Leave no connection open: a server shutting down gracefully waits
	// for connections that were dialled but never used.
	defer httpc.CloseIdleConnections()

	info, err := probe(o.hs, httpc)
	if err != nil {
		fmt.Fprintf(c.stderr, "loadtest: no Matrix homeserver answers at %s: %v\n", o.hs, err)
		return exitFailed
	}
	rep.Server = info

	rec := stats.NewRecorder()
	users, err := accounts.New(accounts.Config{
		HS: o.hs, HTTP: httpc, SharedSecret: o.sharedSecret, RegistrationToken: o.registrationToken,
		Prefix: o.prefix, Concurrency: o.setupConcurrency,
	}, rec)
	if err != nil {
		fmt.Fprintf(c.stderr, "loadtest: %v\n", err)
		return exitFailed
	}
	rep.Registration, rep.UserPrefix = users.Method(), users.Prefix()

	var mon *procmon.Monitor
	if o.pid != 0 {
		if mon, err = procmon.Start(o.pid, time.Second); err != nil {
			fmt.Fprintf(c.stderr, "loadtest: --pid: %v\n", err)
			return exitFailed
		}
	}

	line := progress.New(c.stderr, c.tty, sc.Name(), c.progressInterval)
	stop := make(chan struct{})
	ctx, abort := context.WithCancel(context.Background())
	defer abort()
	stopped := make(chan struct{}) // closed when the signal watcher ends
	go func() {
		defer close(stopped)
		if c.signals == nil {
			return
		}
		select {
		case <-c.signals:
		case <-ctx.Done():
			return
		}
		line.Printf("stopping: closing the window, finishing requests in flight and writing the report (Ctrl-C again to abort)")
		close(stop)
		select {
		case <-c.signals:
			line.Printf("aborting requests in flight")
			abort()
		case <-ctx.Done():
		}
	}()

	env := &scenario.Env{HS: o.hs, HTTP: httpc, Users: users, Rec: rec, Stop: stop,
		SetupConcurrency: o.setupConcurrency, Progress: line, RunID: users.Prefix()}
	runErr := sc.Run(ctx, env)
	line.Close()
	abort()
	<-stopped

	rep.Finished = time.Now()
	rep.AddMeasurements(rec.Snapshot())
	if rep.Window != nil {
		rep.Window.EndedBy = env.WindowEnd()
	}
	if mon != nil {
		samples, readErr := mon.Stop()
		idleFrom, idleTo := env.Idle()
		rep.AddProcess(o.pid, samples, readErr, idleFrom, idleTo)
	}
	rep.Notes = env.Notes()
	code := exitOK
	wasStopped := env.Stopped()
	switch {
	case runErr != nil && matrix.IsNotImplemented(runErr):
		rep.Status, rep.Error, code = report.StatusSkipped, runErr.Error(), exitSkipped
	case wasStopped:
		rep.Status, code = report.StatusStopped, exitStopped
		if runErr != nil && !errors.Is(runErr, context.Canceled) {
			rep.Error = runErr.Error()
		}
	case runErr != nil:
		rep.Status, rep.Error, code = report.StatusFailed, runErr.Error(), exitFailed
	}
	rep.WriteTable(c.stdout)

	out := o.out
	if out == "" {
		out = fmt.Sprintf("loadtest-%s-%s", sc.Name(), started.Format("20060102-150405"))
	}
	files, err := rep.Write(out)
	if err != nil {
		fmt.Fprintf(c.stderr, "loadtest: %v\n", err)
		return exitFailed
	}
	if len(files) > 0 {
		fmt.Fprintf(c.stderr, "wrote %s (open %s)\n", files[0], files[len(files)-1])
	}
	switch code {
	case exitSkipped:
		fmt.Fprintf(c.stderr, "loadtest %s: skipped: %v\n", sc.Name(), runErr)
	case exitFailed:
		fmt.Fprintf(c.stderr, "loadtest %s: %v\n", sc.Name(), runErr)
	}
	return code
}

// probe asks the server for its spec versions: a check that a Matrix
// homeserver answers, and what it says of itself.
func probe(hs string, httpc *http.Client) (report.ServerInfo, error) {
	cli, err := matrix.NewClient(hs, httpc)
	if err != nil {
		return report.ServerInfo{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var versions mautrix.RespVersions
	_, resp, err := cli.MakeFullRequestWithResp(ctx, mautrix.FullRequest{
		Method: http.MethodGet, URL: cli.BuildClientURL("versions"), ResponseJSON: &versions,
	})
	if err != nil {
		return report.ServerInfo{}, fmt.Errorf("GET /_matrix/client/versions: %w", err)
	}
	info := report.ServerInfo{Header: resp.Header.Get("Server")}
	for _, v := range versions.Versions {
		info.Versions = append(info.Versions, v.String())
	}
	return info, nil
}
