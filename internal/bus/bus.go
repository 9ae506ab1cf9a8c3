// Package bus is how components talk: NATS core request/reply for queries
// between components, and JetStream streams for what must not be lost and
// must stay in order (room events, federation and appservice queues, EDUs).
//
// It sits below every component and above config: components import bus,
// bus imports no component. By default the homeserver runs an embedded
// nats-server in its own process with no TCP listener; a split deployment
// points every process at one external NATS cluster instead.
//
// Every subject and stream name a caller passes to this package is relative:
// the Bus puts its configured prefix in front ("hs." for subjects, "hs_" for
// streams), so that two homeservers can share a cluster and no component
// ever spells the prefix itself.
package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
)

// Log field names of this package.
const (
	fieldStream   = "stream"
	fieldSubject  = "subject"
	fieldConsumer = "consumer"
	fieldSequence = "stream_seq"
	fieldAttempt  = "delivery"
	fieldRetryIn  = "retry_in"
	fieldBatch    = "batch"
	fieldURL      = "nats_url"
	fieldStoreDir = "store_dir"
	fieldListen   = "listen"
)

const (
	// clientName is how our connections appear in NATS monitoring.
	clientName = "homeserver"
	// readyTimeout bounds the wait for the embedded server to start.
	readyTimeout = 10 * time.Second
	// drainTimeout bounds Close's wait for pending messages to flush.
	drainTimeout = 10 * time.Second
	// reconnectWait is the pause between reconnects to an external server.
	reconnectWait = 2 * time.Second
)

// Bus is a connection to NATS (embedded or external) with JetStream, the
// streams of streams.go ensured. It is safe for concurrent use; Close it
// once, after the components that use it have stopped.
type Bus struct {
	prefix string
	nc     *nats.Conn
	js     jetstream.JetStream
	// server is the embedded nats-server; nil when connected to an
	// external one.
	server *server.Server
	log    *logrus.Entry
	// closed is closed when the NATS connection is closed for good.
	closed chan struct{}
	// replies routes the replies to Call's requests.
	replies replyMux

	// mu guards stops, nextStop and closing.
	mu       sync.Mutex
	stops    map[uint64]func()
	nextStop uint64
	closing  bool

	closeOnce sync.Once
	closeErr  error
}

// Open connects to the bus described by cfg and ensures every stream of
// streams.go exists with its configured limits. With an empty cfg.URL it
// starts an embedded nats-server storing JetStream under
// global.Path(cfg.StoreDir), reachable only in-process unless cfg.Listen
// is set. cfg must have its defaults applied (Prefix and StoreDir set).
func Open(ctx context.Context, cfg config.Bus, global *config.Global, log *logrus.Entry) (*Bus, error) {
	if err := validPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("open bus: %w", err)
	}
	b := &Bus{
		prefix: cfg.Prefix,
		log:    log,
		closed: make(chan struct{}),
		stops:  map[uint64]func(){},
	}
	var err error
	if cfg.URL == "" {
		err = b.startEmbedded(cfg, global)
	} else {
		err = b.connectExternal(cfg.URL)
	}
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("open bus: %w", err)
	}
	if b.js, err = jetstream.New(b.nc); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("open bus: jetstream: %w", err)
	}
	if err := b.EnsureStreams(ctx); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("open bus: %w", err)
	}
	return b, nil
}

// validPrefix accepts what is both a valid subject token and a valid part
// of a stream name: letters, digits, '-' and '_'.
func validPrefix(p string) error {
	if p == "" {
		return errors.New("bus.prefix is empty (config defaults not applied?)")
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("bus.prefix %q: only letters, digits, '-' and '_' are allowed", p)
		}
	}
	return nil
}

// startEmbedded runs nats-server in-process and connects to it without
// a socket.
func (b *Bus) startEmbedded(cfg config.Bus, global *config.Global) error {
	if cfg.StoreDir == "" {
		return errors.New("bus.store_dir is empty (config defaults not applied?)")
	}
	storeDir := cfg.StoreDir
	if global != nil {
		storeDir = global.Path(storeDir)
	}
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return fmt.Errorf("create nats store dir: %w", err)
	}
	opts := &server.Options{
		ServerName: clientName + "-" + b.prefix,
		JetStream:  true,
		StoreDir:   storeDir,
		// The homeserver owns the process's signals, not the NATS server.
		NoSigs: true,
		// No socket unless asked: nothing else on the machine can reach
		// the bus, and the default port 4222 is never taken.
		DontListen: cfg.Listen == "",
		// Flush every JetStream write to disk before acknowledging it:
		// what the bus acknowledged survives a power cut, as the
		// database's commits do. (An external NATS sets this itself.)
		SyncAlways: true,
	}
	if cfg.Listen != "" {
		host, port, err := splitListen(cfg.Listen)
		if err != nil {
			return err
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("configure embedded nats: %w", err)
	}
	logger := &serverLogger{log: b.log}
	ns.SetLogger(logger, false, false)
	b.server = ns
	ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		return fmt.Errorf("embedded nats not ready after %s%s", readyTimeout, logger.fatalSuffix())
	}
	if !ns.JetStreamEnabled() {
		return fmt.Errorf("embedded nats started without jetstream%s", logger.fatalSuffix())
	}
	b.nc, err = nats.Connect("", nats.InProcessServer(ns), nats.Name(clientName),
		nats.ClosedHandler(b.onClosed), nats.ErrorHandler(b.onAsyncError))
	if err != nil {
		return fmt.Errorf("connect to embedded nats: %w", err)
	}
	fields := logrus.Fields{fieldStoreDir: storeDir}
	if a := ns.Addr(); a != nil {
		fields[fieldListen] = a.String()
	}
	b.log.WithFields(fields).Info("embedded nats started")
	return nil
}

// splitListen parses host:port. Port 0 picks a free port (NATS itself
// would read 0 as its default, 4222).
func splitListen(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("bus.listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bus.listen %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// connectExternal connects to an external NATS server, reconnecting
// forever once connected (a NATS restart must not stop the homeserver).
func (b *Bus) connectExternal(url string) error {
	nc, err := nats.Connect(url,
		nats.Name(clientName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.DrainTimeout(drainTimeout),
		nats.ClosedHandler(b.onClosed),
		nats.ErrorHandler(b.onAsyncError),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.WithError(err).WithField(fieldURL, url).Warn("nats disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.WithField(fieldURL, nc.ConnectedUrlRedacted()).Info("nats reconnected")
		}),
	)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	b.nc = nc
	return nil
}

func (b *Bus) onClosed(*nats.Conn) { close(b.closed) }

func (b *Bus) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	l := b.log.WithError(err)
	if sub != nil {
		l = l.WithField(fieldSubject, sub.Subject)
	}
	l.Warn("nats async error")
}

// Close stops every consumer and server this Bus started and still runs,
// flushes pending messages, closes the connection and, when embedded,
// shuts the NATS server down cleanly so that the next Open on the same
// store finds its streams intact. Later calls return the first result.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		stops := make([]func(), 0, len(b.stops))
		for _, s := range b.stops {
			stops = append(stops, s)
		}
		b.mu.Unlock()
		for _, stop := range stops {
			stop()
		}
		if b.nc != nil {
			if err := b.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				b.closeErr = fmt.Errorf("drain nats connection: %w", err)
				b.nc.Close()
			}
			select {
			case <-b.closed:
			case <-time.After(drainTimeout + time.Second):
				b.nc.Close()
				b.closeErr = errors.New("drain nats connection: timed out")
			}
		}
		b.shutdownServer()
	})
	return b.closeErr
}

func (b *Bus) shutdownServer() {
	if b.server == nil {
		return
	}
	b.server.Shutdown()
	b.server.WaitForShutdown()
}

// register records stop so that Close runs it if its owner has not; the
// returned func unregisters it. It fails once Close has begun.
func (b *Bus) register(stop func()) (unregister func(), err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return nil, errors.New("bus is closed")
	}
	id := b.nextStop
	b.nextStop++
	b.stops[id] = stop
	return func() {
		b.mu.Lock()
		delete(b.stops, id)
		b.mu.Unlock()
	}, nil
}

// subject returns the full NATS subject of a relative one.
func (b *Bus) subject(rel string) string { return b.prefix + "." + rel }

// relSubject strips the prefix from a full subject.
func (b *Bus) relSubject(full string) string {
	return strings.TrimPrefix(full, b.prefix+".")
}

// StreamName returns the JetStream name of a stream of the table (one of
// the Stream constants), with the prefix: what NATS tools show.
func (b *Bus) StreamName(stream string) string { return b.prefix + "_" + stream }

// Subject joins a subject root (one of the Subject constants) and tokens
// (partitions, usually from Partition) into a relative subject, ready for
// Publish or Consume.
func Subject(root string, tokens ...string) string {
	return strings.Join(append([]string{root}, tokens...), ".")
}

// validSubject rejects what NATS would misroute: empty tokens, wildcards
// and whitespace in a subject we publish to.
func validSubject(rel string) error {
	if rel == "" {
		return errors.New("empty subject")
	}
	for _, tok := range strings.Split(rel, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return fmt.Errorf("invalid subject %q", rel)
		}
	}
	return nil
}

// serverLogger sends the embedded server's log to logrus. Its notices
// (a banner of some twenty lines at start) go to debug.
type serverLogger struct {
	log *logrus.Entry
	// mu guards fatal.
	mu sync.Mutex
	// fatal is the last fatal message, reported by Open when the server
	// fails to start.
	fatal string
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debugf("nats: "+format, v...) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warnf("nats: "+format, v...) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.log.Errorf("nats: "+format, v...) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.log.Debugf("nats: "+format, v...) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.log.Tracef("nats: "+format, v...) }

// Fatalf logs at error level: library code never exits the process; Open
// reports the failure instead.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	l.fatal = msg
	l.mu.Unlock()
	l.log.Error("nats: " + msg)
}

func (l *serverLogger) fatalSuffix() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatal == "" {
		return ""
	}
	return ": " + l.fatal
}
