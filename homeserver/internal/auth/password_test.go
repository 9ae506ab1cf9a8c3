package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestPasswords(t *testing.T) {
	p := PasswordParams{MemoryKiB: 1024, Time: 1}
	h1, err := HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("correct horse", p)
	if h1 == h2 {
		t.Fatal("two hashes of one password must differ (salt)")
	}
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("unexpected hash format %q", h1)
	}
	bc, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	for _, tc := range []struct {
		name, hash, pw string
		ok             bool
	}{
		{"argon2id right", h1, "correct horse", true},
		{"argon2id wrong", h1, "correct horsf", false},
		{"bcrypt right", string(bc), "correct horse", true},
		{"bcrypt wrong", string(bc), "battery", false},
		{"empty hash never matches", "", "", false},
		{"garbage hash", "$argon2id$nonsense", "x", false},
	} {
		if got := CheckPassword(tc.hash, tc.pw) == nil; got != tc.ok {
			t.Errorf("%s: match = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestTokens(t *testing.T) {
	a, ah := NewToken(AccessTokenPrefix)
	b, _ := NewToken(AccessTokenPrefix)
	if a == b || !strings.HasPrefix(a, AccessTokenPrefix) || ah != HashToken(a) || strings.Contains(ah, a) {
		t.Fatalf("bad tokens %q %q %q", a, b, ah)
	}
	if id := NewDeviceID(); len(id) != 10 || strings.ToUpper(id) != id {
		t.Fatalf("bad device id %q", id)
	}
}
