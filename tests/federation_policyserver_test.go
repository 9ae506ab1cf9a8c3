package tests

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// policyKeyID is the key id of policy server signatures (spec v1.18).
const policyKeyID = "ed25519:policy_server"

// fakePolicyServer is a policy server for tests: it stands in front of
// server C's federation listener (A and B reach C through it), answers
// POST /_matrix/policy/v1/sign itself and passes every other request on
// to C. So C is a homeserver in the room (its users' joins make it a
// policy server the room may use) that is also a policy server. It signs
// with its own ed25519 key, refuses events whose body holds "spam" (400
// M_FORBIDDEN) and fails on "crash" (500).
type fakePolicyServer struct {
	t   testing.TB
	f   *Federation
	key ed25519.PrivateKey

	mu sync.Mutex // guards asked
	// asked are the bodies asked about, each with the asking server.
	asked []policyAsk
}

type policyAsk struct{ origin, body string }

// startPolicyFederation starts A, B and C, with A and B reaching C
// through a fake policy server.
func startPolicyFederation(t *testing.T, dbURL func(testing.TB) string) (*Federation, *fakePolicyServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := startFederation(t, dbURL, []string{fedA, fedB, fedC}, func(cfg *config.Config) {
		if cfg.Global.ServerName != fedC {
			cfg.Federation.ServerAddresses[fedC] = ln.Addr().String()
		}
	})
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ps := &fakePolicyServer{t: t, f: f, key: key}
	certFile, keyFile := f.CA.issue(t, t.TempDir(), fedC)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	toC := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "https", Host: f.Addrs[fedC]})
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.CA.pool, ServerName: fedC}},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_matrix/policy/v1/sign", ps.sign)
	mux.Handle("/", toC)
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return f, ps
}

// publicKey is the policy server's key as m.room.policy gives it.
func (ps *fakePolicyServer) publicKey() string {
	return base64.RawStdEncoding.EncodeToString(ps.key.Public().(ed25519.PublicKey))
}

// sign answers POST /_matrix/policy/v1/sign: the request must be signed
// by one of the federation's servers (X-Matrix, destination C).
func (ps *fakePolicyServer) sign(w http.ResponseWriter, r *http.Request) {
	fr, errResp := fclient.VerifyHTTPRequest(r, time.Now(), fedC, nil, knownKeys{ps.f, ps.t})
	if fr == nil {
		w.WriteHeader(errResp.Code)
		_ = json.NewEncoder(w).Encode(errResp.JSON)
		return
	}
	var pdu struct {
		Content struct {
			Body string `json:"body"`
		} `json:"content"`
	}
	if err := json.Unmarshal(fr.Content(), &pdu); err != nil {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"errcode":"M_NOT_JSON","error":"not an event"}`)
		return
	}
	ps.mu.Lock()
	ps.asked = append(ps.asked, policyAsk{origin: string(fr.Origin()), body: pdu.Content.Body})
	ps.mu.Unlock()
	switch {
	case strings.Contains(pdu.Content.Body, "spam"):
		w.WriteHeader(400)
		fmt.Fprint(w, `{"errcode":"M_FORBIDDEN","error":"probable spam"}`)
		return
	case strings.Contains(pdu.Content.Body, "crash"):
		w.WriteHeader(500)
		fmt.Fprint(w, `{"errcode":"M_UNKNOWN","error":"policy server on fire"}`)
		return
	}
	redacted, err := gomatrixserverlib.MustGetRoomVersion("12").RedactEventJSON(fr.Content())
	if err == nil {
		redacted, err = gomatrixserverlib.SignJSON(fedC, policyKeyID, ps.key, redacted)
	}
	var signed struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if err == nil {
		err = json.Unmarshal(redacted, &signed)
	}
	if err != nil {
		w.WriteHeader(500)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{fedC: map[string]string{policyKeyID: signed.Signatures[fedC][policyKeyID]}})
}

// askedAbout returns whether the policy server was asked about body, and
// by which servers.
func (ps *fakePolicyServer) askedAbout(body string) []string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []string
	for _, a := range ps.asked {
		if a.body == body {
			out = append(out, a.origin)
		}
	}
	return out
}

// knownKeys verifies request signatures with the federation's own keys.
type knownKeys struct {
	f *Federation
	t testing.TB
}

// VerifyJSONs implements gomatrixserverlib.JSONVerifier.
func (k knownKeys) VerifyJSONs(_ context.Context, reqs []gomatrixserverlib.VerifyJSONRequest) ([]gomatrixserverlib.VerifyJSONResult, error) {
	out := make([]gomatrixserverlib.VerifyJSONResult, len(reqs))
	for i, req := range reqs {
		s, ok := k.f.Servers[string(req.ServerName)]
		if !ok {
			out[i].Error = fmt.Errorf("unknown server %s", req.ServerName)
			continue
		}
		key, err := config.ParseSigningKey(s.Cfg.Global.SigningKey)
		if err != nil {
			out[i].Error = err
			continue
		}
		out[i].Error = gomatrixserverlib.VerifyJSON(string(req.ServerName), gomatrixserverlib.KeyID(key.ID), key.Private.Public().(ed25519.PublicKey), req.Message)
	}
	return out, nil
}

// policySignatureOn returns the policy server's signature on an event
// as server at serves it over federation ("" when it has none).
func policySignatureOn(t *testing.T, f *Federation, at, eventID string) string {
	t.Helper()
	status, body := f.asServer(t, at, fedC, "GET", "/_matrix/federation/v1/event/"+url.PathEscape(eventID), nil)
	if status != 200 {
		t.Fatalf("GET /event/%s on %s: %d %v", eventID, at, status, body)
	}
	pdus, _ := body["pdus"].([]any)
	if len(pdus) != 1 {
		t.Fatalf("GET /event/%s on %s: %v", eventID, at, body)
	}
	sigs, _ := pdus[0].(map[string]any)["signatures"].(map[string]any)
	byPS, _ := sigs[fedC].(map[string]any)
	sig, _ := byPS[policyKeyID].(string)
	return sig
}

// latestEventID returns the id of the newest event of room's timeline
// as c sees it on s.
func latestEventID(t *testing.T, c *mautrix.Client, room id.RoomID) string {
	t.Helper()
	resp, err := c.Messages(ctx(), room, "", "", mautrix.DirectionBackward, nil, 1)
	if err != nil || len(resp.Chunk) == 0 {
		t.Fatalf("latest event of %s: %v", room, err)
	}
	return resp.Chunk[0].ID.String()
}

// TestFederationPolicyServer: a room of A, B and C whose m.room.policy
// names C, behind which a policy server answers. Before the policy
// event nothing changes. Then A's local events are signed by the
// policy server before they are sent (the signature reaches B); one it
// refuses is refused to the client with its errcode and reaches nobody;
// one it cannot answer fails the request (502). Events B sends A
// without the signature are soft-failed when the policy server refuses
// them and accepted, with the signature added and kept, when it signs.
// Once C has no member left, the room uses no policy server any more.
func TestFederationPolicyServer(t *testing.T) {
	t.Parallel()
	storagetest.EnginesEach(t, testPolicyServer)
}

func testPolicyServer(t *testing.T, dbURL func(testing.TB) string) {
	f, ps := startPolicyFederation(t, dbURL)
	a := f.Servers[fedA]
	alice, bob, carol := a.Register("alice"), f.Servers[fedB].Register("bob"), f.Servers[fedC].Register("carol")
	room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
	for _, u := range []*mautrix.Client{bob, carol} {
		if _, err := u.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("%s joins: %v", u.UserID, err)
		}
	}
	waitUntil(t, "three members on A", func() bool {
		j, err := alice.JoinedMembers(ctx(), room)
		return err == nil && len(j.Joined) == 3
	})
	seenBy := func(c *mautrix.Client, body string) bool { return slices.Contains(roomBodies(t, c, room), body) }
	waitSeen := func(c *mautrix.Client, body string) {
		t.Helper()
		eventuallyEvery(t, fmt.Sprintf("%q seen by %s", body, c.UserID), 50*time.Millisecond, func() bool { return seenBy(c, body) })
	}
	txn := 0
	send := func(body string) Response {
		txn++
		return a.Do("PUT", roomPath(room, "send", "m.room.message", fmt.Sprint("policy", txn)), alice.AccessToken,
			map[string]string{"msgtype": "m.text", "body": body})
	}

	// No m.room.policy: nothing is asked, spam or not.
	send("spam before any policy").Expect(t, 200, "")
	waitSeen(bob, "spam before any policy")
	if got := ps.askedAbout("spam before any policy"); len(got) != 0 {
		t.Errorf("the policy server was asked about an event of a room without m.room.policy: %v", got)
	}

	// The room names C as its policy server; the policy event itself is
	// never sent to it.
	a.Do("PUT", roomPath(room, "state", "m.room.policy", ""), alice.AccessToken,
		map[string]any{"via": fedC, "public_keys": map[string]string{"ed25519": ps.publicKey()}}).Expect(t, 200, "")
	eventuallyEvery(t, "B has the policy event", 50*time.Millisecond, func() bool {
		r := f.Servers[fedB].Do("GET", roomPath(room, "state", "m.room.policy", ""), bob.AccessToken, nil)
		return r.Status == 200
	})

	// (1) A local message: signed, and the signature travels with it.
	ev := send("hello with policy").Expect(t, 200, "")
	if got := ps.askedAbout("hello with policy"); !slices.Equal(got, []string{fedA}) {
		t.Errorf("the policy server was asked by %v, want A once", got)
	}
	waitSeen(bob, "hello with policy")
	eventID, _ := ev.Body["event_id"].(string)
	if sig := policySignatureOn(t, f, fedB, eventID); sig == "" {
		t.Error("B has the event without the policy server's signature")
	}
	// Refused: the client gets the policy server's error; nobody gets
	// the event.
	r := send("this is spam").Expect(t, 400, "M_FORBIDDEN")
	if msg, _ := r.Body["error"].(string); msg != "probable spam" {
		t.Errorf("refusal message %q, want the policy server's", msg)
	}
	// Out of order: the client's request fails, the event goes nowhere.
	send("crash the policy server").Expect(t, 502, "M_UNKNOWN")
	send("after the refusals").Expect(t, 200, "")
	waitSeen(bob, "after the refusals")
	for _, c := range []*mautrix.Client{alice, bob} {
		for _, body := range []string{"this is spam", "crash the policy server"} {
			if seenBy(c, body) {
				t.Errorf("%s sees %q", c.UserID, body)
			}
		}
	}

	// (2) Events B sends A without the policy server's signature.
	aliceSync, _ := newSyncer(t, alice, "")
	key := f.signingKey(t, fedB)
	prev := latestEventID(t, alice, room)
	auth := []string{stateEventID(t, a, alice, room, "m.room.power_levels", ""), stateEventID(t, a, alice, room, "m.room.member", bob.UserID.String())}
	inbound := func(body string) gomatrixserverlib.PDU {
		return buildPDU(t, fedB, key, room, bob.UserID, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": body}, []string{prev}, auth)
	}
	spam, fine := inbound("inbound spam"), inbound("inbound fine")
	status, body := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/policy1", map[string]any{
		"origin": fedB, "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{json.RawMessage(spam.JSON()), json.RawMessage(fine.JSON())}})
	if status != 200 {
		t.Fatalf("send: %d %v", status, body)
	}
	for _, p := range []gomatrixserverlib.PDU{spam, fine} {
		if res, _ := body["pdus"].(map[string]any)[p.EventID()].(map[string]any); res == nil || res["error"] != nil {
			t.Errorf("PDU %s: result %v, want accepted (soft failure is not reported)", p.EventID(), res)
		}
	}
	for _, b := range []string{"inbound spam", "inbound fine"} {
		if got := ps.askedAbout(b); !slices.Equal(got, []string{fedA}) {
			t.Errorf("the policy server was asked about %q by %v, want A once", b, got)
		}
	}
	aliceSync.until("the signed inbound event", func(resp *mautrix.RespSync) bool {
		got := timelineBodies(resp, room)
		if slices.Contains(got, "inbound spam") {
			t.Error("the refused inbound event is in alice's sync")
		}
		return slices.Contains(got, "inbound fine")
	})
	if seenBy(alice, "inbound spam") {
		t.Error("the refused inbound event is in alice's /messages")
	}
	if sig := policySignatureOn(t, f, fedA, fine.EventID()); sig == "" {
		t.Error("A keeps the inbound event without the signature it asked for")
	}

	// (3) C's only member leaves: the room uses no policy server.
	if _, err := carol.LeaveRoom(ctx(), room); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "carol's leave on A", func() bool {
		j, err := alice.JoinedMembers(ctx(), room)
		return err == nil && len(j.Joined) == 2
	})
	send("spam with the policy server gone").Expect(t, 200, "")
	waitSeen(bob, "spam with the policy server gone")
	prev = latestEventID(t, alice, room)
	late := inbound("inbound spam with the policy server gone")
	if status, body := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/policy2", map[string]any{
		"origin": fedB, "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{json.RawMessage(late.JSON())}}); status != 200 {
		t.Fatalf("send: %d %v", status, body)
	}
	waitSeen(alice, "inbound spam with the policy server gone")
	for _, b := range []string{"spam with the policy server gone", "inbound spam with the policy server gone"} {
		if got := ps.askedAbout(b); len(got) != 0 {
			t.Errorf("the policy server was asked about %q by %v once its server left", b, got)
		}
	}
}
