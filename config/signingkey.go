package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SigningKey is the server's ed25519 key, with the id other servers know it by.
type SigningKey struct {
	// ID is the key id, "ed25519:" followed by a short version.
	ID string
	// Private is the key itself.
	Private ed25519.PrivateKey
}

// ParseSigningKey reads the "ed25519 <version> <base64 seed>" form that
// Synapse's signing key files also use.
func ParseSigningKey(s string) (SigningKey, error) {
	f := strings.Fields(s)
	if len(f) != 3 || f[0] != "ed25519" {
		return SigningKey{}, errors.New(`must be "ed25519 <version> <base64 seed>"`)
	}
	seed, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "="))
	if err != nil || len(seed) != ed25519.SeedSize {
		return SigningKey{}, errors.New("seed must be 32 bytes of unpadded base64")
	}
	return SigningKey{ID: "ed25519:" + f[1], Private: ed25519.NewKeyFromSeed(seed)}, nil
}

// NewSigningKey makes a fresh key with a random version.
func NewSigningKey() (SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	var v [3]byte
	if _, err := rand.Read(v[:]); err != nil {
		return SigningKey{}, fmt.Errorf("generate key version: %w", err)
	}
	// Key versions may hold only [a-zA-Z0-9_], so hex rather than base64.
	return SigningKey{ID: "ed25519:a_" + hex.EncodeToString(v[:]), Private: priv}, nil
}

// String writes the key in the form ParseSigningKey reads.
func (k SigningKey) String() string {
	return "ed25519 " + strings.TrimPrefix(k.ID, "ed25519:") + " " + base64.RawStdEncoding.EncodeToString(k.Private.Seed())
}
