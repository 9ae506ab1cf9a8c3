package tests

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// testCA is a certificate authority made for one test: the federation
// listeners of its servers hold certificates it issued, and every server
// trusts it through federation.trusted_ca_file, as a private federation
// trusts its organisation's CA.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// File is the CA certificate, PEM.
	File string
	pool *x509.CertPool
}

// newTestCA makes a CA and writes its certificate in a temp dir.
func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "federation test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, File: filepath.Join(t.TempDir(), "ca.pem"), pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	writePEM(t, ca.File, "CERTIFICATE", der)
	return ca
}

// issue writes a certificate for host (a DNS name or an IP address) and
// its key in dir.
func (ca *testCA) issue(t testing.TB, dir, host string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, host+".crt"), filepath.Join(dir, host+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback address nobody listens on. The server binds
// it a moment later, so it is taken below Linux's ephemeral range
// (32768–60999): an address handed out for ":0" by another test, or used
// as the source port of a connection, cannot take it meanwhile; and it is
// never handed out twice in this process (tests run in parallel).
func freePort(t testing.TB) string {
	t.Helper()
	handedPorts.Lock()
	defer handedPorts.Unlock()
	for range 100 {
		port := 20000 + mathrand.IntN(12000)
		if handedPorts.m[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		handedPorts.m[port] = true
		return addr
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}

// handedPorts are the ports freePort handed out: the test process's
// register, so that two tests starting servers at once never pick the
// same port before either binds it.
var handedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// Federation is a set of servers of this project federating on loopback,
// with TLS from a test CA and static addresses (no DNS).
type Federation struct {
	CA *testCA
	// Servers by server name.
	Servers map[string]*Server
	// Addrs are the federation listeners' addresses by server name.
	Addrs map[string]string
}

// startFederation starts one server per name, on dbURL(t) databases,
// each allowing the others (closed federation). mutate, when given,
// adjusts a server's configuration (its server name is set).
func startFederation(t testing.TB, dbURL func(testing.TB) string, names []string, mutate func(cfg *config.Config)) *Federation {
	t.Helper()
	f := &Federation{CA: newTestCA(t), Servers: map[string]*Server{}, Addrs: map[string]string{}}
	for _, n := range names {
		f.Addrs[n] = freePort(t)
	}
	for _, n := range names {
		name := n
		dir := t.TempDir()
		certFile, keyFile := f.CA.issue(t, dir, name)
		f.Servers[name] = StartServer(t, dbURL(t), func(cfg *config.Config) {
			cfg.Global.ServerName = name
			cfg.Federation.Listen = f.Addrs[name]
			cfg.Federation.TLSCert, cfg.Federation.TLSKey = certFile, keyFile
			cfg.Federation.TrustedCAFile = f.CA.File
			cfg.Federation.ServerAddresses = map[string]string{}
			for other, addr := range f.Addrs {
				if other != name {
					cfg.Federation.AllowedServers = append(cfg.Federation.AllowedServers, other)
					cfg.Federation.ServerAddresses[other] = addr
				}
			}
			if mutate != nil {
				mutate(cfg)
			}
		})
	}
	return f
}

// federationEngines runs fn per storage engine on servers started by
// startFederation.
func federationEngines(t *testing.T, names []string, fn func(t *testing.T, f *Federation)) {
	federationEnginesWith(t, names, nil, fn)
}

// federationEnginesWith is federationEngines with startFederation's
// mutate, which both engines' runs share: it must hold no state (a test
// with state of its own per run, links to cut or a listener, starts its
// servers itself in storagetest.EnginesEach).
func federationEnginesWith(t *testing.T, names []string, mutate func(cfg *config.Config), fn func(t *testing.T, f *Federation)) {
	storagetest.EnginesEach(t, func(t *testing.T, dbURL func(testing.TB) string) {
		fn(t, startFederation(t, dbURL, names, mutate))
	})
}

// allowLists returns a startFederation mutate that gives each server
// named in lists exactly that allow-list (the others keep every other
// server of the federation).
func allowLists(lists map[string][]string) func(cfg *config.Config) {
	return func(cfg *config.Config) {
		if l, ok := lists[cfg.Global.ServerName]; ok {
			cfg.Federation.AllowedServers = l
		}
	}
}

// fedRequest sends a federation request to the listener of server at, as
// origin would send it to dest (at, normally), signed with key (no
// Authorization header when key is nil), and returns the status and the
// JSON body.
func (f *Federation) fedRequest(t testing.TB, at, origin, dest, method, path string, content any, keyID string, key ed25519.PrivateKey) (int, map[string]any) {
	t.Helper()
	fr := fclient.NewFederationRequest(method, spec.ServerName(origin), spec.ServerName(dest), path)
	if content != nil {
		if err := fr.SetContent(content); err != nil {
			t.Fatal(err)
		}
	}
	if key != nil {
		if err := fr.Sign(spec.ServerName(origin), gomatrixserverlib.KeyID(keyID), key); err != nil {
			t.Fatal(err)
		}
	}
	req, err := fr.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Scheme, req.URL.Host = "https", f.Addrs[at]
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.CA.pool, ServerName: at},
	}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, dest, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body
}

// signingKey returns the signing key of server name.
func (f *Federation) signingKey(t testing.TB, name string) config.SigningKey {
	t.Helper()
	k, err := config.ParseSigningKey(f.Servers[name].Cfg.Global.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// asServer sends a request to server at signed by origin's real key.
func (f *Federation) asServer(t testing.TB, at, origin, method, path string, content any) (int, map[string]any) {
	t.Helper()
	k := f.signingKey(t, origin)
	return f.fedRequest(t, at, origin, at, method, path, content, k.ID, k.Private)
}

// buildPDU builds an event of room (version 12) as server origin does,
// signed with key, on prevs with the given auth events.
func buildPDU(t testing.TB, origin string, key config.SigningKey, room id.RoomID, sender id.UserID, typ string, stateKey *string,
	content any, prevs, auths []string) gomatrixserverlib.PDU {
	t.Helper()
	raw, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	v := gomatrixserverlib.MustGetRoomVersion("12")
	depth := int64(100)
	pdu, err := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
		SenderID: sender.String(), RoomID: room.String(), Type: typ, StateKey: stateKey, Content: raw,
		PrevEvents: prevs, AuthEvents: auths, Depth: depth,
	}).Build(time.Now(), spec.ServerName(origin), gomatrixserverlib.KeyID(key.ID), key.Private)
	if err != nil {
		t.Fatal(err)
	}
	return pdu
}

// stateEventID returns the id of a current state event of room as c sees
// it through s's client API.
func stateEventID(t testing.TB, s *Server, c *mautrix.Client, room id.RoomID, typ, key string) string {
	t.Helper()
	r := s.Do("GET", roomPath(room, "state"), c.AccessToken, nil).Expect(t, 200, "")
	var evs []struct {
		Type     string `json:"type"`
		StateKey string `json:"state_key"`
		EventID  string `json:"event_id"`
	}
	if err := json.Unmarshal(r.Raw, &evs); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == typ && e.StateKey == key {
			return e.EventID
		}
	}
	t.Fatalf("no %s/%s in the state of %s", typ, key, room)
	return ""
}

// publicRoomOnA registers alice on fedA and bob on fedB, creates a public
// room on A and has bob join it over federation: the start of many
// two-server tests.
func publicRoomOnA(t testing.TB, f *Federation) (a, b *Server, alice, bob *mautrix.Client, room id.RoomID) {
	t.Helper()
	a, b = f.Servers[fedA], f.Servers[fedB]
	alice, bob = a.Register("alice"), b.Register("bob")
	room = createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
	if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
		t.Fatalf("bob joins over federation: %v", err)
	}
	return a, b, alice, bob, room
}
