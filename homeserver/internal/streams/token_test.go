package streams

import "testing"

func TestTokenRoundTrip(t *testing.T) {
	tok := Token{Rooms: 1, Receipts: 2, AccountData: 3, Presence: 4, ToDevice: 5, DeviceLists: 6, Typing: 1763700000000007}
	got, err := ParseToken(tok.String())
	if err != nil || got != tok {
		t.Fatalf("ParseToken(%q) = %+v, %v", tok.String(), got, err)
	}
}

func TestParseTokenRefuses(t *testing.T) {
	for _, s := range []string{"", "s12", "m1_2_3", "m1_2_3_4_5_6_x", "m1_2_3_4_5_6_-7", "x1_2_3_4_5_6_7", "m1_2_3_4_5_6_7_8"} {
		if _, err := ParseToken(s); err == nil {
			t.Errorf("ParseToken(%q) accepted", s)
		}
	}
}
