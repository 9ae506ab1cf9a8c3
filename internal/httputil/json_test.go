package httputil

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeJSONErrors(t *testing.T) {
	type target struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	for _, tc := range []struct {
		name, body string
		limit      int64
		want       Code // "" for success
		status     int
	}{
		{"valid", `{"name":"a","count":1}`, 100, "", 200},
		{"empty body is an empty object", ``, 100, "", 200},
		{"not json", `{"name":`, 100, CodeNotJSON, 400},
		{"array is not an object", `[1,2]`, 100, CodeBadJSON, 400},
		{"wrong field type", `{"count":"three"}`, 100, CodeBadJSON, 400},
		{"too large", `{"name":"` + strings.Repeat("x", 200) + `"}`, 100, CodeTooLarge, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			var v target
			err := DecodeJSON(r, tc.limit, &v)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.want || e.Status != tc.status {
				t.Fatalf("got %v, want %s (%d)", err, tc.want, tc.status)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(0.001, 2)
	for i := 0; i < 2; i++ {
		if err := l.Allow("k"); err != nil {
			t.Fatalf("request %d refused: %v", i, err)
		}
	}
	err := l.Allow("k")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeLimitExceeded || e.Header.Get("Retry-After") == "" || e.Extra["retry_after_ms"] == nil {
		t.Fatalf("third request: got %v, want M_LIMIT_EXCEEDED with Retry-After", err)
	}
	if l.Blocked("k") == nil {
		t.Fatal("Blocked: want an error for an exhausted bucket")
	}
	if l.Blocked("other") != nil || l.Allow("other") != nil {
		t.Fatal("another key must not share the bucket")
	}
	if NewLimiter(0, 0).Allow("k") != nil {
		t.Fatal("a zero rate must allow everything")
	}
}
