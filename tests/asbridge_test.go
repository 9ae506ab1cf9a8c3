package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// asbridgeDir holds the Node side of TestNodeBridge: package.json and its
// lockfile (npm ci installs them; CI does), and bridge.mjs.
const asbridgeDir = "asbridge"

// nodeForBridge returns the node binary to run bridge.mjs with, or skips
// the test saying what is missing.
func nodeForBridge(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("matrix-appservice-bridge test skipped: node is not installed (Node 20 or later is needed)")
	}
	out, err := exec.Command(node, "-p", "process.versions.node.split('.')[0]").Output()
	if major, _ := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || major < 20 {
		t.Skipf("matrix-appservice-bridge test skipped: node %s is older than 20 (err %v)", strings.TrimSpace(string(out)), err)
	}
	if _, err := os.Stat(filepath.Join(asbridgeDir, "node_modules", "matrix-appservice-bridge", "package.json")); err != nil {
		t.Skip("matrix-appservice-bridge test skipped: its packages are not installed; run `npm ci` in tests/asbridge")
	}
	return node
}

// TestNodeBridge: a second bridge framework, matrix-appservice-bridge
// (the framework of the Node bridges), under Node. Its user joins a room
// and sends a message that a Matrix user sees; the Matrix user answers
// and the bridge receives it in a transaction.
func TestNodeBridge(t *testing.T) {
	node := nodeForBridge(t)
	storagetest.Engines(t, func(t *testing.T, dbURL string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		reg := filepath.Join(t.TempDir(), "js.yaml")
		regYAML := fmt.Sprintf(`id: jsbridge
url: http://127.0.0.1:%d
as_token: js-as-token-%d
hs_token: js-hs-token-%d
sender_localpart: jsbot
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: '@js_.*:test\.local'
  aliases: []
  rooms: []
`, port, port, port)
		if err := os.WriteFile(reg, []byte(regYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		s := StartServer(t, dbURL, func(c *config.Config) {
			c.AppServices.ConfigFiles = []string{reg}
			c.AppServices.MaxRetryInterval = config.Duration(200 * time.Millisecond)
		})
		alice := s.Register("alice")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		sync, _ := newSyncer(t, alice, "")

		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "--require", "./crypto-shim.cjs", "bridge.mjs", s.URL, reg, strconv.Itoa(port), room.String())
		cmd.Dir = asbridgeDir
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = testWriter{t}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start node: %v", err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		next := func(prefix string) string {
			t.Helper()
			for {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatalf("bridge.mjs ended before %s", prefix)
					}
					t.Logf("bridge.mjs: %s", line)
					if strings.HasPrefix(line, "ERROR") {
						t.Fatalf("bridge.mjs: %s", line)
					}
					if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
						return rest
					} else if line == prefix {
						return ""
					}
				case <-ctx.Done():
					t.Fatalf("bridge.mjs: no %s in time", prefix)
				}
			}
		}
		next("READY")
		sentID := next("SENT")
		jsUser := id.NewUserID("js_alice", serverName)
		sync.until("the bridged message", func(r *mautrix.RespSync) bool {
			for _, e := range r.Rooms.Join[room].Timeline.Events {
				if e.ID.String() == sentID && e.Sender == jsUser && strings.Contains(string(e.Content.VeryRaw), "Hello from matrix-appservice-bridge") {
					return true
				}
			}
			return false
		})
		evID := sendText(t, alice, room, "Hello from Matrix")
		var got struct {
			Sender, Body string
			EventID      string `json:"event_id"`
		}
		if err := json.Unmarshal([]byte(next("RECEIVED")), &got); err != nil {
			t.Fatal(err)
		}
		if got.Sender != alice.UserID.String() || got.Body != "Hello from Matrix" || got.EventID != evID.String() {
			t.Fatalf("bridge received %+v", got)
		}
	})
}
