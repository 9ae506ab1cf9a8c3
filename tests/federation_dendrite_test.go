package tests

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// dendriteDirEnv names the directory holding Dendrite's dendrite,
// generate-config and generate-keys binaries (tests/dendrite/build.sh
// builds them); without it the interoperability test is skipped.
const dendriteDirEnv = "HOMESERVER_TEST_DENDRITE_DIR"

// TestFederationDendrite: a Dendrite server (another implementation, on
// the same gomatrixserverlib) and one of ours federate over TLS on
// loopback. A room created on Dendrite is joined by our user and one
// created on ours by Dendrite's; messages go both ways in each. Both
// servers are named by IP literal, so neither needs DNS.
func TestFederationDendrite(t *testing.T) {
	t.Parallel()
	s, ourAddr, d, dendriteAddr := startWithDendrite(t)
	alice := s.Register("alice")
	dave := d.register(t, "dave")

	// A room of Dendrite's, joined from ours.
	resp, err := dave.CreateRoom(ctx(), &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "on dendrite"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.JoinRoom(ctx(), resp.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{dendriteAddr}}); err != nil {
		t.Fatalf("our user joins Dendrite's room: %v", err)
	}
	talkBothWays(t, resp.RoomID, alice, dave)

	// A room of ours, joined from Dendrite.
	room := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "name": "on ours"})
	joinFromDendrite(t, dave, room, ourAddr)
	talkBothWays(t, room, dave, alice)
}

// startWithDendrite starts Dendrite and one of our servers (SQLite) that
// federate with each other, or skips the test when Dendrite's binaries
// are not given. Both are named by their federation address.
func startWithDendrite(t *testing.T) (s *Server, ourName string, d *dendrite, dendriteName string) {
	t.Helper()
	dir := os.Getenv(dendriteDirEnv)
	if dir == "" {
		t.Skipf("%s is not set: build Dendrite with tests/dendrite/build.sh and point it at the binaries", dendriteDirEnv)
	}
	ca := newTestCA(t)
	ourAddr, dendriteAddr, dendriteHTTP := freePort(t), freePort(t), freePort(t)
	d = startDendrite(t, dir, ca, dendriteAddr, dendriteHTTP)
	certFile, keyFile := ca.issue(t, t.TempDir(), "127.0.0.1")
	s = StartServer(t, storagetest.SQLiteURL(t), func(cfg *config.Config) {
		cfg.Global.ServerName = ourAddr
		cfg.Federation.Listen = ourAddr
		cfg.Federation.TLSCert, cfg.Federation.TLSKey = certFile, keyFile
		cfg.Federation.TrustedCAFile = ca.File
		cfg.Federation.AllowedServers = []string{dendriteAddr}
		cfg.Federation.ServerAddresses = map[string]string{dendriteAddr: dendriteAddr}
	})
	return s, ourAddr, d, dendriteAddr
}

// joinFromDendrite joins Dendrite's user c to our room through ourName,
// trying again for a while: Dendrite may not have our keys yet.
func joinFromDendrite(t *testing.T, c *mautrix.Client, room id.RoomID, ourName string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{ourName}})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dendrite's user joins our room: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// talkBothWays has each of two users (the room's creator second) send a
// message and waits until both read both through /messages.
func talkBothWays(t *testing.T, room id.RoomID, joiner, creator *mautrix.Client) {
	t.Helper()
	sendText(t, joiner, room, "from "+joiner.UserID.String())
	sendText(t, creator, room, "from "+creator.UserID.String())
	for _, c := range []*mautrix.Client{joiner, creator} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			bodies := roomBodies(t, c, room)
			if slices.Contains(bodies, "from "+joiner.UserID.String()) && slices.Contains(bodies, "from "+creator.UserID.String()) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s reads %q in %s, want both messages", c.UserID, bodies, room)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// dendrite is a Dendrite process started for one test.
type dendrite struct {
	clientURL string
	secret    string
}

// startDendrite configures and starts Dendrite named by its federation
// address (an IP literal), its federation listener with a certificate
// from ca, and waits for its client API.
func startDendrite(t *testing.T, bin string, ca *testCA, fedAddr, httpAddr string) *dendrite {
	t.Helper()
	dir := t.TempDir()
	run := func(name string, args ...string) []byte {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out
	}
	run("generate-keys", "--private-key", filepath.Join(dir, "matrix_key.pem"))
	cfg := run("generate-config", "-ci", "-dir", dir, "-server", fedAddr)
	// The CI configuration checks federation TLS (our test CA is not one
	// Dendrite can be told to trust: it skips the check instead) and
	// needs its key file where this test wrote it.
	cfg = regexp.MustCompile(`(?m)^(federation_api:\n(?:  .*\n)*?  disable_tls_validation:) false`).ReplaceAll(cfg, []byte("$1 true"))
	cfg = bytes.Replace(cfg, []byte("private_key: matrix_key.pem"), []byte("private_key: "+filepath.Join(dir, "matrix_key.pem")), 1)
	// Users are made through the shared secret only.
	cfg = bytes.Replace(cfg, []byte("registration_disabled: false"), []byte("registration_disabled: true"), 1)
	if err := os.WriteFile(filepath.Join(dir, "dendrite.yaml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := ca.issue(t, dir, "127.0.0.1")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "dendrite"), "-config", filepath.Join(dir, "dendrite.yaml"),
		"-http-bind-address", httpAddr, "-https-bind-address", fedAddr, "-tls-cert", certFile, "-tls-key", keyFile)
	cmd.Dir = dir
	logFile, err := os.Create(filepath.Join(dir, "dendrite.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("dendrite's log (last 4 KiB):\n%s", b[max(0, len(b)-4096):])
			}
		}
	})
	d := &dendrite{clientURL: "http://" + httpAddr, secret: "complement"}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(d.clientURL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		select {
		case <-exited:
			t.Fatalf("dendrite exited: %v", cmd.ProcessState)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dendrite did not answer on %s: %v", httpAddr, err)
		}
	}
}

// register makes a user on Dendrite through the shared-secret endpoint
// (Synapse's, which Dendrite implements) and returns a client for it.
func (d *dendrite) register(t *testing.T, localpart string) *mautrix.Client {
	t.Helper()
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	resp, err := http.Get(d.clientURL + "/_synapse/admin/v1/register")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&nonce)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	password := "pass-" + localpart
	mac := hmac.New(sha1.New, []byte(d.secret))
	fmt.Fprintf(mac, "%s\x00%s\x00%s\x00notadmin", nonce.Nonce, localpart, password)
	body, _ := json.Marshal(map[string]any{"nonce": nonce.Nonce, "username": localpart, "password": password,
		"admin": false, "mac": hex.EncodeToString(mac.Sum(nil))})
	resp, err = http.Post(d.clientURL+"/_synapse/admin/v1/register", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg struct {
		UserID      id.UserID   `json:"user_id"`
		AccessToken string      `json:"access_token"`
		DeviceID    id.DeviceID `json:"device_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || resp.StatusCode != 200 || reg.AccessToken == "" {
		t.Fatalf("register %s on dendrite: %d %v", localpart, resp.StatusCode, err)
	}
	c, err := mautrix.NewClient(d.clientURL, reg.UserID, reg.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	c.DeviceID = reg.DeviceID
	return c
}
