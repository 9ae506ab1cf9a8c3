package serving

import (
	"mime"
	"net/http"
	"testing"
)

func TestDisposition(t *testing.T) {
	tests := []struct {
		name, contentType, fileName, want string
		wantName                          string // what a parser reads back; "" to skip
	}{
		{"png inline", "image/png", "", "inline", ""},
		{"parameters ignored", "text/plain; charset=utf-8", "", "inline", ""},
		{"case ignored", "Image/PNG", "", "inline", ""},
		{"html attachment", "text/html", "", "attachment", ""},
		{"svg attachment", "image/svg+xml", "", "attachment", ""},
		{"javascript attachment", "application/javascript", "", "attachment", ""},
		{"unparsable attachment", "not a type", "", "attachment", ""},
		{"empty attachment", "", "", "attachment", ""},
		{"plain name", "image/png", "cat.png", `inline; filename=cat.png`, "cat.png"},
		{"space quoted", "application/pdf", "my file.pdf", `attachment; filename="my file.pdf"`, "my file.pdf"},
		{"quote escaped", "text/html", `a"b.html`, `attachment; filename="a\"b.html"`, `a"b.html`},
		{"backslash escaped", "text/html", `a\b`, `attachment; filename="a\\b"`, `a\b`},
		{"utf-8 encoded", "image/jpeg", "café ☕.jpg", `inline; filename*=utf-8''caf%C3%A9%20%E2%98%95.jpg`, "café ☕.jpg"},
		{"header injection encoded", "text/plain", "a\r\nSet-Cookie: x", `inline; filename*=utf-8''a%0D%0ASet-Cookie%3A%20x`, "a\r\nSet-Cookie: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Disposition(tt.contentType, tt.fileName)
			if got != tt.want {
				t.Fatalf("Disposition(%q, %q) = %s, want %s", tt.contentType, tt.fileName, got, tt.want)
			}
			if tt.wantName != "" {
				_, params, err := mime.ParseMediaType(got)
				if err != nil || params["filename"] != tt.wantName {
					t.Fatalf("parsed back %q (%v), want %q", params["filename"], err, tt.wantName)
				}
			}
		})
	}
}

func TestSetHeaders(t *testing.T) {
	h := http.Header{}
	SetHeaders(h, "", "x.bin")
	want := map[string]string{
		"Content-Type":            "application/octet-stream",
		"Content-Disposition":     "attachment; filename=x.bin",
		"Content-Security-Policy": CSP,
		"X-Content-Type-Options":  "nosniff",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
}
