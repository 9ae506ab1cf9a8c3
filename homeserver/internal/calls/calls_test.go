package calls

import (
	"testing"
	"time"
)

// TestTURNCredentials checks the scheme against a value computed with
// coturn's documented recipe: echo -n "$user" | openssl dgst -binary
// -sha1 -hmac "$secret" | base64.
func TestTURNCredentials(t *testing.T) {
	user, pass := TURNCredentials("north", "@alice:example.org", time.Unix(1700000000, 0))
	if user != "1700000000:@alice:example.org" {
		t.Fatalf("username %q", user)
	}
	if pass != wantTURNPassword {
		t.Fatalf("password %q, want %q", pass, wantTURNPassword)
	}
}

// wantTURNPassword is openssl's answer for the values above.
const wantTURNPassword = "b7c/MWmorxmLryRFjaJYkUW5nOo="
