// Package auth turns credentials into sessions: password hashing, token
// minting and hashing, and resolving an access token to the device it was
// issued to (as middleware for the client API and as api.TokenQuerier for
// other components).
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// PasswordParams are argon2id's cost parameters.
type PasswordParams struct {
	// MemoryKiB is the memory cost in KiB.
	MemoryKiB uint32
	// Time is the number of passes.
	Time uint32
}

// ErrWrongPassword: the password does not match the hash.
var ErrWrongPassword = errors.New("wrong password")

// HashPassword hashes pw with argon2id into a PHC string
// ($argon2id$v=19$m=…,t=…,p=1$salt$hash), which records its own parameters
// so that raising the cost later does not break old hashes.
func HashPassword(pw string, p PasswordParams) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("make salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=1$%s$%s", argon2.Version, p.MemoryKiB, p.Time,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// CheckPassword compares pw with a stored hash: argon2id, or bcrypt for
// accounts imported from Synapse. An empty hash never matches.
func CheckPassword(hash, pw string) error {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return checkArgon2id(hash, pw)
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) != nil {
			return ErrWrongPassword
		}
		return nil
	default:
		return ErrWrongPassword
	}
}

func checkArgon2id(hash, pw string) error {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 {
		return fmt.Errorf("malformed argon2id hash")
	}
	var mem, t uint32
	var par uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &par); err != nil {
		return fmt.Errorf("malformed argon2id parameters: %w", err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("malformed argon2id salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return fmt.Errorf("malformed argon2id key: %w", err)
	}
	got := argon2.IDKey([]byte(pw), salt, t, mem, par, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrWrongPassword
	}
	return nil
}
