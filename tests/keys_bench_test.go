package tests

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// seedDevices gives each of users one device with device keys and a
// master and self-signing key, written straight to the database (the
// figures measure /keys/query, not a thousand registrations).
func seedDevices(b *testing.B, st *storage.Store, users []string) {
	b.Helper()
	for i, u := range users {
		dev := fmt.Sprintf("DEV%d", i)
		if err := st.OpenSession(ctx(), storage.NewSession{UserID: u, DeviceID: dev, AccessHash: "bench-" + u}); err != nil {
			b.Fatal(err)
		}
		dk := fmt.Sprintf(`{"algorithms":["m.olm.v1.curve25519-aes-sha2","m.megolm.v1.aes-sha2"],"device_id":%q,"keys":{"curve25519:%[1]s":"c%[2]d","ed25519:%[1]s":"e%[2]d"},"signatures":{%[3]q:{"ed25519:%[1]s":"sig"}},"user_id":%[3]q}`, dev, i, u)
		if _, err := st.UploadKeys(ctx(), storage.KeyUpload{UserID: u, DeviceID: dev, DeviceKeys: dk}); err != nil {
			b.Fatal(err)
		}
		master := fmt.Sprintf(`{"keys":{"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"usage":["master"],"user_id":%q}`, u)
		if err := st.SetCrossSigningKeys(ctx(), u, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			map[string]string{storage.KeyTypeMaster: master, storage.KeyTypeSelfSigning: master}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeysQuery1000 measures one /keys/query for 1 000 users with a
// device and cross-signing keys each: what a client asks when it joins a
// room shared with a thousand people.
func BenchmarkKeysQuery1000(b *testing.B) {
	benchEngines(b, func(b *testing.B, s *Server) {
		alice := s.Register("alice")
		users := make([]string, 1000)
		query := map[string]any{}
		for i := range users {
			users[i] = fmt.Sprintf("@user%d:%s", i, serverName)
			query[users[i]] = []string{}
		}
		seedDevices(b, storeOf(b, s), users)
		body := map[string]any{"device_keys": query}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r := s.Do("POST", "/_matrix/client/v3/keys/query", alice.AccessToken, body)
			if r.Status != 200 || len(r.Body["device_keys"].(map[string]any)) != len(users) {
				b.Fatalf("query: %d", r.Status)
			}
		}
	})
}

// BenchmarkSendToDevice500 measures one PUT /sendToDevice to "*" of a
// user with 500 devices: 500 inbox rows per request.
func BenchmarkSendToDevice500(b *testing.B) {
	benchEngines(b, func(b *testing.B, s *Server) {
		alice := s.Register("alice")
		bob := s.Register("bob")
		st := storeOf(b, s)
		for i := 0; i < 499; i++ {
			if err := st.OpenSession(ctx(), storage.NewSession{UserID: bob.UserID.String(), DeviceID: fmt.Sprintf("B%d", i), AccessHash: fmt.Sprintf("bench-b%d", i)}); err != nil {
				b.Fatal(err)
			}
		}
		body := map[string]any{"messages": map[string]any{bob.UserID.String(): map[string]any{"*": map[string]any{"algorithm": "m.olm.v1.curve25519-aes-sha2", "ciphertext": "x"}}}}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if r := s.Do("PUT", fmt.Sprintf("/_matrix/client/v3/sendToDevice/m.room.encrypted/t%d", i), alice.AccessToken, body); r.Status != 200 {
				b.Fatalf("send: %d %s", r.Status, r.Raw)
			}
		}
		b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "messages/s")
	})
}

// BenchmarkKeysClaim measures /keys/claim of one key of one device, by
// parallel clients contending for the same device's keys.
func BenchmarkKeysClaim(b *testing.B) {
	benchEngines(b, func(b *testing.B, s *Server) {
		alice := s.Register("alice")
		bob := s.Register("bob")
		st := storeOf(b, s)
		keys := make([]storage.OneTimeKey, b.N+100)
		for i := range keys {
			keys[i] = storage.OneTimeKey{Algorithm: "signed_curve25519", KeyID: fmt.Sprintf("K%08d", i), JSON: fmt.Sprintf(`{"key":"k%d"}`, i)}
		}
		for len(keys) > 0 {
			batch := keys[:min(len(keys), 1000)]
			keys = keys[len(batch):]
			if _, err := st.UploadKeys(ctx(), storage.KeyUpload{UserID: alice.UserID.String(), DeviceID: alice.DeviceID.String(), OneTimeKeys: batch}); err != nil {
				b.Fatal(err)
			}
		}
		body := map[string]any{"one_time_keys": map[string]any{alice.UserID.String(): map[string]any{alice.DeviceID.String(): "signed_curve25519"}}}
		var empty atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := s.Do("POST", "/_matrix/client/v3/keys/claim", bob.AccessToken, body)
				if r.Status != 200 {
					b.Errorf("claim: %d %s", r.Status, r.Raw)
					return
				}
				if len(r.Body["one_time_keys"].(map[string]any)) == 0 {
					empty.Add(1)
				}
			}
		})
		if empty.Load() > 0 {
			b.Fatalf("%d claims found no key", empty.Load())
		}
	})
}
