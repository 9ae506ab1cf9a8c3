package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
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

// TestNodeBridge: a second bridge framework, matrix-appservice-bridge
// (the framework of the Node bridges), under Node. Its user joins a room
// and sends a message that a Matrix user sees; the Matrix user answers
// and the bridge receives it in a transaction.
func TestNodeBridge(t *testing.T) {
	t.Parallel()
	node := requireNode(t, "matrix-appservice-bridge", asbridgeDir, "matrix-appservice-bridge")
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

		prog := startNode(t, node, asbridgeDir, "ERROR", nil, "--require", "./crypto-shim.cjs", "bridge.mjs", s.URL, reg, strconv.Itoa(port), room.String())
		next := prog.next
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
