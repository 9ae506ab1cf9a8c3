package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
)

// testBridge is a bridge built on mautrix-go's appservice package, served
// on a fixed local address that the test can take down and bring back,
// with a record of every transaction the server pushed to it.
type testBridge struct {
	t      testing.TB
	Reg    *appservice.Registration
	Path   string
	AS     *appservice.AppService
	prefix string
	addr   string

	// mu guards every field below.
	mu       sync.Mutex
	srv      *http.Server
	ln       net.Listener
	txns     []bridgeTxn
	users    map[id.UserID]bool
	aliases  map[id.RoomAlias]id.RoomID
	changed  chan struct{}
	failNext int
}

// bridgeTxn is one transaction as the bridge received it.
type bridgeTxn struct {
	ID       string
	EventIDs []string
	Bodies   []string
	Raw      map[string]json.RawMessage
	// Refused says the bridge answered 500 (FailNext).
	Refused bool
}

// newTestBridge writes the registration of a bridge owning @prefix_* and
// #prefix_* (exclusively) and binds its address; attach serves it once
// the server runs.
func newTestBridge(t testing.TB, asID, prefix string) *testBridge {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := appservice.CreateRegistration()
	reg.ID = asID
	reg.URL = "http://" + ln.Addr().String()
	reg.SenderLocalpart = prefix + "bot"
	no := false
	reg.RateLimited = &no
	reg.EphemeralEvents = true
	reg.SoruEphemeralEvents = true
	reg.MSC3202 = true
	reg.MSC4190 = true
	reg.Protocols = []string{prefix + "proto"}
	server := regexp.QuoteMeta(serverName)
	reg.Namespaces.UserIDs.Register(regexp.MustCompile("@"+prefix+"_.*:"+server), true)
	reg.Namespaces.RoomAliases.Register(regexp.MustCompile("#"+prefix+"_.*:"+server), true)
	path := filepath.Join(t.TempDir(), asID+".yaml")
	if err := reg.Save(path); err != nil {
		t.Fatal(err)
	}
	return &testBridge{t: t, Reg: reg, Path: path, prefix: prefix, addr: ln.Addr().String(), ln: ln,
		users: map[id.UserID]bool{}, aliases: map[id.RoomAlias]id.RoomID{}, changed: make(chan struct{})}
}

// withBridges registers the bridges' files in a server's configuration,
// with short retry waits.
func withBridges(bridges ...*testBridge) func(*config.Config) {
	return func(c *config.Config) {
		for _, b := range bridges {
			c.AppServices.ConfigFiles = append(c.AppServices.ConfigFiles, b.Path)
		}
		c.AppServices.MaxRetryInterval = config.Duration(200 * time.Millisecond)
	}
}

// attach builds the mautrix appservice against s and serves it.
func (b *testBridge) attach(s *Server) {
	b.t.Helper()
	as, err := appservice.CreateFull(appservice.CreateOpts{Registration: b.Reg, HomeserverDomain: serverName, HomeserverURL: s.URL})
	if err != nil {
		b.t.Fatal(err)
	}
	as.QueryHandler = bridgeQueries{b}
	proto := b.prefix + "proto"
	as.Router.HandleFunc("GET /_matrix/app/v1/thirdparty/protocol/"+proto, func(w http.ResponseWriter, r *http.Request) {
		if as.CheckServerToken(w, r) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"user_fields":["name"],"location_fields":[],"icon":"mxc://example.org/icon","field_types":{},"instances":[]}`))
		}
	})
	as.Router.HandleFunc("GET /_matrix/app/v1/thirdparty/user/"+proto, func(w http.ResponseWriter, r *http.Request) {
		if as.CheckServerToken(w, r) {
			w.Header().Set("Content-Type", "application/json")
			user := id.NewUserID(b.prefix+"_"+r.URL.Query().Get("name"), serverName)
			raw, _ := json.Marshal([]map[string]any{{"userid": user, "protocol": proto, "fields": map[string]string{"name": r.URL.Query().Get("name")}}})
			_, _ = w.Write(raw)
		}
	})
	b.AS = as
	done := make(chan struct{})
	go func() {
		// mautrix blocks a transaction when its channel is full.
		for {
			select {
			case <-as.Events:
			case <-as.ToDeviceEvents:
			case <-as.OTKCounts:
			case <-as.DeviceLists:
			case <-done:
				return
			}
		}
	}()
	b.t.Cleanup(func() {
		close(done)
		b.Down()
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	b.serveLocked()
}

func (b *testBridge) serveLocked() {
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serveHTTP)}
	go func(srv *http.Server, ln net.Listener) { _ = srv.Serve(ln) }(b.srv, b.ln)
}

// Down stops the bridge: the server's pushes fail to connect.
func (b *testBridge) Down() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		_ = b.srv.Close()
		b.srv, b.ln = nil, nil
	}
}

// Up brings the bridge back on its address.
func (b *testBridge) Up() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Fatalf("bridge back on %s: %v", b.addr, err)
	}
	b.ln = ln
	b.serveLocked()
}

// FailNext makes the bridge answer the next n transactions with 500.
func (b *testBridge) FailNext(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failNext = n
}

// serveHTTP records transactions and hands every request to mautrix.
func (b *testBridge) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/_matrix/app/v1/transactions/") {
		raw, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(raw))
		var body struct {
			Events []struct {
				EventID string `json:"event_id"`
				Content struct {
					Body string `json:"body"`
				} `json:"content"`
			} `json:"events"`
		}
		var all map[string]json.RawMessage
		_ = json.Unmarshal(raw, &body)
		_ = json.Unmarshal(raw, &all)
		txn := bridgeTxn{ID: r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:], Raw: all}
		for _, e := range body.Events {
			txn.EventIDs = append(txn.EventIDs, e.EventID)
			txn.Bodies = append(txn.Bodies, e.Content.Body)
		}
		if r.Header.Get("Authorization") == "Bearer "+b.Reg.ServerToken {
			b.mu.Lock()
			if b.failNext > 0 {
				b.failNext--
				txn.Refused = true
			}
			b.txns = append(b.txns, txn)
			close(b.changed)
			b.changed = make(chan struct{})
			b.mu.Unlock()
			if txn.Refused {
				http.Error(w, `{"errcode":"M_UNKNOWN"}`, http.StatusInternalServerError)
				return
			}
		}
	}
	b.AS.Router.ServeHTTP(w, r)
}

// Txns returns the transactions received so far, in order.
func (b *testBridge) Txns() []bridgeTxn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bridgeTxn(nil), b.txns...)
}

// Bodies returns the message bodies received, once per transaction id,
// in order.
func (b *testBridge) Bodies() []string {
	seen := map[string]bool{}
	var out []string
	for _, txn := range b.Txns() {
		if txn.Refused || seen[txn.ID] {
			continue
		}
		seen[txn.ID] = true
		for _, body := range txn.Bodies {
			if body != "" {
				out = append(out, body)
			}
		}
	}
	return out
}

// waitFor waits until cond holds on the transactions received, or fails.
func (b *testBridge) waitFor(what string, timeout time.Duration, cond func([]bridgeTxn) bool) []bridgeTxn {
	b.t.Helper()
	deadline := time.After(timeout)
	for {
		b.mu.Lock()
		txns, changed := append([]bridgeTxn(nil), b.txns...), b.changed
		b.mu.Unlock()
		if cond(txns) {
			return txns
		}
		select {
		case <-changed:
		case <-deadline:
			b.t.Fatalf("bridge %s: %s never came (%d transactions)", b.Reg.ID, what, len(txns))
			return nil
		}
	}
}

// waitBodies waits until the bridge has received want (in order, among
// other messages) and returns every body received.
func (b *testBridge) waitBodies(timeout time.Duration, want ...string) []string {
	b.t.Helper()
	var got []string
	b.waitFor(strings.Join(want, ", "), timeout, func([]bridgeTxn) bool {
		got = b.Bodies()
		i := 0
		for _, body := range got {
			if i < len(want) && body == want[i] {
				i++
			}
		}
		return i == len(want)
	})
	return got
}

// bridgeQueries answers the server's user and alias queries: users of the
// bridge's namespace exist (it registers them), and #prefix_* aliases get
// a room made by the bridge's bot.
type bridgeQueries struct{ b *testBridge }

func (q bridgeQueries) QueryUser(userID id.UserID) bool {
	b := q.b
	if !strings.HasPrefix(userID.Localpart(), b.prefix+"_") {
		return false
	}
	if err := b.AS.Intent(userID).EnsureRegistered(context.Background()); err != nil {
		b.t.Errorf("bridge: register %s: %v", userID, err)
		return false
	}
	b.mu.Lock()
	b.users[userID] = true
	b.mu.Unlock()
	return true
}

func (q bridgeQueries) QueryAlias(alias id.RoomAlias) bool {
	b := q.b
	local, _, _ := strings.Cut(strings.TrimPrefix(string(alias), "#"), ":")
	if !strings.HasPrefix(local, b.prefix+"_") {
		return false
	}
	resp, err := b.AS.BotClient().CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: local, Name: "bridged " + local})
	if err != nil {
		b.t.Errorf("bridge: create room for %s: %v", alias, err)
		return false
	}
	b.mu.Lock()
	b.aliases[alias] = resp.RoomID
	b.mu.Unlock()
	return true
}

// queried reports whether the bridge was asked about userID.
func (b *testBridge) queried(userID id.UserID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.users[userID]
}

// aliasRoom returns the room the bridge made for alias.
func (b *testBridge) aliasRoom(alias id.RoomAlias) id.RoomID {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.aliases[alias]
}

// rawEventsOf returns the events of txn as JSON objects.
func rawEventsOf(txn bridgeTxn) []map[string]any {
	var out []map[string]any
	_ = json.Unmarshal(txn.Raw["events"], &out)
	return out
}
