// Package roompolicy holds the pure parts of the spec's Policy Servers
// (v1.18): reading a room's m.room.policy event, telling which events a
// policy server signs, and checking and adding its signature on a PDU.
// The roomserver (whether an event is soft-failed, whether a local event
// must be signed first) and the federation component (asking for a new
// signature on a received event) decide with the same code.
//
// It is shared plumbing: it reads events with gomatrixserverlib, makes
// no network calls and imports no component.
package roompolicy

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// EventType is the state event naming a room's policy server.
const EventType = "m.room.policy"

// KeyID is the id of a policy server's ed25519 key in event signatures;
// the spec fixes it.
const KeyID gomatrixserverlib.KeyID = "ed25519:policy_server"

// Server is the policy server an m.room.policy event names.
type Server struct {
	// Via is the policy server's server name.
	Via spec.ServerName
	// Key is its ed25519 public key (from public_keys.ed25519), which
	// verifies its signatures; not the key it signs requests with.
	Key ed25519.PublicKey
}

// Parse reads the content of an m.room.policy state event (state key
// ""). ok is false when the content is not valid per the spec (via a
// string, public_keys an object with a string ed25519): the room then
// uses no policy server. A key that is not 32 bytes of unpadded base64
// is invalid too, as no signature could ever verify with it.
func Parse(content []byte) (s Server, ok bool) {
	var c struct {
		Via        *string                    `json:"via"`
		PublicKeys map[string]json.RawMessage `json:"public_keys"`
	}
	if json.Unmarshal(content, &c) != nil || c.Via == nil || *c.Via == "" || c.PublicKeys == nil {
		return Server{}, false
	}
	var b64 string
	if json.Unmarshal(c.PublicKeys["ed25519"], &b64) != nil {
		return Server{}, false
	}
	key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil || len(key) != ed25519.PublicKeySize {
		return Server{}, false
	}
	return Server{Via: spec.ServerName(*c.Via), Key: ed25519.PublicKey(key)}, true
}

// Exempt reports whether the policy server is never asked about pdu: the
// m.room.policy state event with state key "" (so that a room can always
// change or drop its policy server). Every other event, state or not, is
// checked.
func Exempt(pdu gomatrixserverlib.PDU) bool {
	return pdu.Type() == EventType && pdu.StateKey() != nil && *pdu.StateKey() == ""
}

// ErrNoSignature: the event carries no signature of the policy server.
var ErrNoSignature = errors.New("no policy server signature")

// Verify checks that pdu carries a valid signature of s: by server name
// s.Via with key id KeyID, over the event's redacted form, as events
// are signed. It returns ErrNoSignature when there is none.
func Verify(pdu gomatrixserverlib.PDU, s Server) error {
	verImpl, err := gomatrixserverlib.GetRoomVersion(pdu.Version())
	if err != nil {
		return fmt.Errorf("verify policy server signature: %w", err)
	}
	redacted, err := verImpl.RedactEventJSON(pdu.JSON())
	if err != nil {
		return fmt.Errorf("redact event %s: %w", pdu.EventID(), err)
	}
	var head struct {
		Signatures map[string]map[string]json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(redacted, &head); err != nil {
		return fmt.Errorf("read signatures of %s: %w", pdu.EventID(), err)
	}
	if _, ok := head.Signatures[string(s.Via)][string(KeyID)]; !ok {
		return ErrNoSignature
	}
	if err := gomatrixserverlib.VerifyJSON(string(s.Via), KeyID, s.Key, redacted); err != nil {
		return fmt.Errorf("policy server signature of %s: %w", pdu.EventID(), err)
	}
	return nil
}

// WithSignature returns pdu with sig (unpadded base64) as its signature
// by via with key id KeyID, in place of any such signature it had; its
// other signatures are kept. The event id does not change: in room
// versions 1 and 2 it is part of the event, and from version 3 on the
// reference hash it is made of leaves the signatures out.
func WithSignature(pdu gomatrixserverlib.PDU, via spec.ServerName, sig string) (gomatrixserverlib.PDU, error) {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(pdu.JSON(), &ev); err != nil {
		return nil, fmt.Errorf("decode event %s: %w", pdu.EventID(), err)
	}
	sigs := map[string]map[string]string{}
	if raw, ok := ev["signatures"]; ok {
		if err := json.Unmarshal(raw, &sigs); err != nil {
			return nil, fmt.Errorf("decode signatures of %s: %w", pdu.EventID(), err)
		}
	}
	if sigs[string(via)] == nil {
		sigs[string(via)] = map[string]string{}
	}
	sigs[string(via)][string(KeyID)] = sig
	raw, err := json.Marshal(sigs)
	if err != nil {
		return nil, fmt.Errorf("encode signatures of %s: %w", pdu.EventID(), err)
	}
	ev["signatures"] = raw
	js, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", pdu.EventID(), err)
	}
	if js, err = gomatrixserverlib.CanonicalJSON(js); err != nil {
		return nil, fmt.Errorf("canonical event %s: %w", pdu.EventID(), err)
	}
	verImpl, err := gomatrixserverlib.GetRoomVersion(pdu.Version())
	if err != nil {
		return nil, fmt.Errorf("add policy server signature: %w", err)
	}
	signed, err := verImpl.NewEventFromTrustedJSON(js, pdu.Redacted())
	if err != nil {
		return nil, fmt.Errorf("parse signed event %s: %w", pdu.EventID(), err)
	}
	if signed.EventID() != pdu.EventID() {
		return nil, fmt.Errorf("signing event %s changed its id to %s", pdu.EventID(), signed.EventID())
	}
	return signed, nil
}
