package roompolicy

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

func TestParse(t *testing.T) {
	key := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		name, content string
		ok            bool
	}{
		{"valid", `{"via":"ps.example","public_keys":{"ed25519":"` + key + `"}}`, true},
		{"no via", `{"public_keys":{"ed25519":"` + key + `"}}`, false},
		{"via not a string", `{"via":1,"public_keys":{"ed25519":"` + key + `"}}`, false},
		{"no public_keys", `{"via":"ps.example"}`, false},
		{"public_keys not an object", `{"via":"ps.example","public_keys":"x"}`, false},
		{"no ed25519 key", `{"via":"ps.example","public_keys":{"curve":"` + key + `"}}`, false},
		{"key not base64", `{"via":"ps.example","public_keys":{"ed25519":"!!"}}`, false},
		{"key too short", `{"via":"ps.example","public_keys":{"ed25519":"AAAA"}}`, false},
		{"empty content", `{}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := Parse([]byte(tc.content))
			if ok != tc.ok || ok && s.Via != "ps.example" {
				t.Errorf("Parse = %+v, %v; want ok %v", s, ok, tc.ok)
			}
		})
	}
}

// TestSignature: an event signed by the policy server's key through
// WithSignature verifies and keeps its id and other signatures; a
// signature by another key, or none, does not verify; the m.room.policy
// state event alone is exempt.
func TestSignature(t *testing.T) {
	_, serverKey, _ := ed25519.GenerateKey(rand.Reader)
	psPub, psKey, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	ps := Server{Via: "ps.example", Key: psPub}
	for _, ver := range []gomatrixserverlib.RoomVersion{"1", "10", "12"} {
		t.Run("v"+string(ver), func(t *testing.T) {
			v := gomatrixserverlib.MustGetRoomVersion(ver)
			proto := &gomatrixserverlib.ProtoEvent{
				SenderID: "@a:hs.example", RoomID: "!r:hs.example", Type: "m.room.message",
				Content: spec.RawJSON(`{"body":"hi"}`), PrevEvents: []string{}, AuthEvents: []string{}, Depth: 2,
			}
			if ver == "12" {
				proto.PrevEvents, proto.AuthEvents = []string{"$x"}, []string{"$y"}
			}
			pdu, err := v.NewEventBuilderFromProtoEvent(proto).Build(time.Now(), "hs.example", "ed25519:a", serverKey)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(pdu, ps); !errors.Is(err, ErrNoSignature) {
				t.Fatalf("unsigned: %v, want ErrNoSignature", err)
			}
			sign := func(key ed25519.PrivateKey) gomatrixserverlib.PDU {
				redacted, err := v.RedactEventJSON(pdu.JSON())
				if err != nil {
					t.Fatal(err)
				}
				signed, err := gomatrixserverlib.SignJSON("ps.example", KeyID, key, redacted)
				if err != nil {
					t.Fatal(err)
				}
				var s struct {
					Signatures map[string]map[string]string `json:"signatures"`
				}
				if err := json.Unmarshal(signed, &s); err != nil {
					t.Fatal(err)
				}
				out, err := WithSignature(pdu, "ps.example", s.Signatures["ps.example"][string(KeyID)])
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			good := sign(psKey)
			if err := Verify(good, ps); err != nil {
				t.Errorf("signed: %v", err)
			}
			if good.EventID() != pdu.EventID() {
				t.Errorf("event id changed: %s → %s", pdu.EventID(), good.EventID())
			}
			if err := gomatrixserverlib.VerifyJSON("hs.example", "ed25519:a", serverKey.Public().(ed25519.PublicKey), mustRedact(t, v, good)); err != nil {
				t.Errorf("the sender's signature is lost: %v", err)
			}
			if err := Verify(sign(otherKey), ps); err == nil || errors.Is(err, ErrNoSignature) {
				t.Errorf("signed by another key: %v, want a bad signature", err)
			}
			if Exempt(pdu) {
				t.Error("a message is exempt")
			}
		})
	}
	empty, other := "", "x"
	v := gomatrixserverlib.MustGetRoomVersion("10")
	for key, want := range map[*string]bool{&empty: true, &other: false, nil: false} {
		pdu, err := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
			SenderID: "@a:hs.example", RoomID: "!r:hs.example", Type: EventType, StateKey: key,
			Content: spec.RawJSON(`{}`), PrevEvents: []string{}, AuthEvents: []string{}, Depth: 2,
		}).Build(time.Now(), "hs.example", "ed25519:a", serverKey)
		if err != nil {
			t.Fatal(err)
		}
		if Exempt(pdu) != want {
			t.Errorf("m.room.policy with state key %v: exempt %v, want %v", key, !want, want)
		}
	}
}

func mustRedact(t *testing.T, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU) []byte {
	t.Helper()
	r, err := v.RedactEventJSON(pdu.JSON())
	if err != nil {
		t.Fatal(err)
	}
	return r
}
