package tests

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// BenchmarkFederationInboundPDUs measures inbound transaction throughput:
// B's server sends A transactions of 50 new messages (each PDU checked,
// signatures included, and accepted by A's roomserver), reported as
// PDUs/s.
func BenchmarkFederationInboundPDUs(b *testing.B) {
	f := startFederation(b, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	a, srvB := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), srvB.Register("bob")
	room := createRoom(b, a, alice, map[string]any{"preset": "public_chat"})
	if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
		b.Fatal(err)
	}
	prev := stateEventID(b, a, alice, room, "m.room.member", bob.UserID.String())
	auth := []string{stateEventID(b, a, alice, room, "m.room.power_levels", ""), prev}
	key := f.signingKey(b, fedB)
	const perTxn = 50
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		pdus := make([]any, perTxn)
		for j := range pdus {
			pdu := buildPDU(b, fedB, key, room, bob.UserID, "m.room.message", nil,
				map[string]string{"msgtype": "m.text", "body": fmt.Sprintf("m%d.%d", i, j)}, []string{prev}, auth)
			pdus[j] = json.RawMessage(pdu.JSON())
			prev = pdu.EventID()
		}
		b.StartTimer()
		status, body := f.asServer(b, fedA, fedB, "PUT", fmt.Sprintf("/_matrix/federation/v1/send/bench%d", i),
			map[string]any{"origin": fedB, "origin_server_ts": time.Now().UnixMilli(), "pdus": pdus})
		if status != 200 {
			b.Fatalf("send: %d %v", status, body)
		}
		for id, r := range body["pdus"].(map[string]any) {
			if e, _ := r.(map[string]any)["error"].(string); e != "" {
				b.Fatalf("PDU %s: %s", id, e)
			}
		}
	}
	b.ReportMetric(float64(b.N*perTxn)/b.Elapsed().Seconds(), "PDUs/s")
}
