package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/storage"
)

// fieldListener names the listener (client or federation) in HTTP logs.
const fieldListener = "listener"

// Listener names, in logs and errors.
const (
	clientListener     = "client"
	federationListener = "federation"
)

// listenOff is the federation.listen value that opens no listener.
const listenOff = "off"

// HTTP server timeouts. There is no write timeout: long-polling /sync and
// large media transfers legitimately take long.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	// healthTimeout bounds the database ping of /health.
	healthTimeout = 5 * time.Second
)

// listener is a bound socket and the HTTP server that will serve it.
type listener struct {
	name   string
	scheme string // "http" or "https"
	ln     net.Listener
	srv    *http.Server
	log    *logrus.Entry
	// serving is set once Serve runs; until then Stop closes ln itself.
	serving bool
}

// listenLocked binds the listeners the running components need: the
// client listener for the client and media components, the TLS federation
// listener for the federation component unless federation.listen is "off".
// The TLS pair is loaded here so that a missing file fails the start.
func (a *App) listenLocked() error {
	if a.run[Client] || a.run[Media] {
		l, err := a.bind(clientListener, a.cfg.Client.Listen, nil)
		if err != nil {
			return err
		}
		a.client = l
	}
	if a.run[Federation] && a.cfg.Federation.Listen != listenOff {
		certPath, keyPath := a.cfg.Global.Path(a.cfg.Federation.TLSCert), a.cfg.Global.Path(a.cfg.Federation.TLSKey)
		cert, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return fmt.Errorf("start: load federation TLS certificate %s and key %s: %w", certPath, keyPath, err)
		}
		tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		l, err := a.bind(federationListener, a.cfg.Federation.Listen, tlsCfg)
		if err != nil {
			return err
		}
		a.federation = l
	}
	return nil
}

// bind opens a TCP socket on addr for the listener called name, serving
// TLS with tlsCfg when it is not nil.
func (a *App) bind(name, addr string, tlsCfg *tls.Config) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start: open %s listener: %w", name, err)
	}
	log := a.log.WithFields(logrus.Fields{httputil.FieldComponent: "http", fieldListener: name})
	l := &listener{name: name, scheme: "http", ln: ln, log: log}
	l.srv = &http.Server{
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          stdlog.New(serverLogWriter{log}, "", 0),
		TLSConfig:         tlsCfg,
	}
	if tlsCfg != nil {
		l.scheme = "https"
	}
	return l, nil
}

// serveLocked gives each bound listener its router and starts serving.
func (a *App) serveLocked(b built) {
	if a.client != nil {
		r := a.router(a.client.log, true)
		r.Method(http.MethodGet, "/health", httputil.Handle(healthHandler(a.db)))
		for _, mount := range b.clientRoutes {
			mount(r)
		}
		a.serve(a.client, r)
	}
	if a.federation != nil {
		r := a.router(a.federation.log, false)
		for _, mount := range b.federationRoutes {
			mount(r)
		}
		a.serve(a.federation, r)
	}
}

// router returns a router with the middleware every API surface shares:
// request ids and access logs, CORS for browsers (client listener only),
// and Matrix errors for unknown paths and methods.
func (a *App) router(log *logrus.Entry, cors bool) chi.Router {
	r := chi.NewRouter()
	r.Use(httputil.Observe(log))
	if cors {
		r.Use(httputil.CORS)
	}
	r.NotFound(httputil.NotFoundHandler)
	r.MethodNotAllowed(httputil.MethodNotAllowedHandler)
	return r
}

// serve runs l's server with handler h until Stop shuts it down.
func (a *App) serve(l *listener, h http.Handler) {
	l.srv.Handler = h
	l.serving = true
	a.serving.Add(1)
	go func() {
		defer a.serving.Done()
		var err error
		if l.srv.TLSConfig != nil {
			err = l.srv.ServeTLS(l.ln, "", "")
		} else {
			err = l.srv.Serve(l.ln)
		}
		if err == nil || errors.Is(err, http.ErrServerClosed) {
			return
		}
		l.log.WithError(err).Error("listener failed")
		select {
		case a.serveErr <- fmt.Errorf("serve %s listener: %w", l.name, err):
		default:
		}
	}()
}

// shutdownListenersLocked stops both listeners at once, lets in-flight
// requests finish until ctx ends, then cuts what remains, and waits for
// the Serve goroutines.
func (a *App) shutdownListenersLocked(ctx context.Context) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, l := range []*listener{a.client, a.federation} {
		if l == nil {
			continue
		}
		if !l.serving {
			if err := l.ln.Close(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("close %s listener: %w", l.name, err))
				mu.Unlock()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Shutdown(ctx); err != nil {
				_ = l.srv.Close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("shut down %s listener: %w", l.name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	a.serving.Wait()
	return errs
}

// urlLocked returns l's base URL, or "" for nil.
func (a *App) urlLocked(l *listener) string {
	if l == nil {
		return ""
	}
	addr := l.ln.Addr().(*net.TCPAddr)
	ip := addr.IP
	if ip.IsUnspecified() {
		if ip.To4() != nil {
			ip = net.IPv4(127, 0, 0, 1)
		} else {
			ip = net.IPv6loopback
		}
	}
	return l.scheme + "://" + net.JoinHostPort(ip.String(), fmt.Sprint(addr.Port))
}

// healthResponse is the body of a healthy GET /health.
type healthResponse struct {
	Status string `json:"status"`
}

// healthHandler answers GET /health: 200 {"status":"ok"} when db
// answers, 503 otherwise, for load balancers and orchestrators. It holds
// db itself rather than reading the App's field, which Stop clears while
// a request cut by a shutdown timeout may still run.
func healthHandler(db *storage.DB) httputil.HandlerFunc {
	return func(r *http.Request) (any, error) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			httputil.Log(r.Context()).WithError(err).Warn("health check: database does not answer")
			return nil, httputil.Errorf(httputil.CodeUnknown, "database unavailable").WithStatus(http.StatusServiceUnavailable)
		}
		return healthResponse{Status: "ok"}, nil
	}
}

// serverLogWriter sends net/http's own messages (accept errors, bad TLS
// handshakes) to logrus: handshake noise from scanners at debug level,
// the rest as warnings.
type serverLogWriter struct{ log *logrus.Entry }

// Write logs one message of net/http's; it never fails.
func (w serverLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		w.log.Debug(msg)
	} else {
		w.log.Warn(msg)
	}
	return len(p), nil
}
