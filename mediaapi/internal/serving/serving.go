// Package serving sets the headers that make served media safe in a
// browser, as the spec's "Serving inline content" section asks: inline only
// for a short list of harmless types, attachment for everything else (HTML
// and SVG included), a sandboxing Content-Security-Policy, and no MIME
// sniffing.
package serving

import (
	"mime"
	"net/http"
	"strings"
)

// CSP is the Content-Security-Policy of every media response: even a file
// a browser renders gets no script, no plugin but PDF and no network.
const CSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; " +
	"style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"

// inlineTypes are the content types the spec lists as safe to serve
// inline.
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true,
	"application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// Inline reports whether contentType (parameters allowed) may be served
// inline.
func Inline(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return inlineTypes[strings.ToLower(t)]
}

// Disposition returns the Content-Disposition of a file of contentType
// named fileName ("" for none): "inline" or "attachment", with the name
// quoted as RFC 6266 says (quoted-string with escapes, or filename* in
// UTF-8 percent-encoding when it is not plain printable ASCII).
func Disposition(contentType, fileName string) string {
	kind := "attachment"
	if Inline(contentType) {
		kind = "inline"
	}
	if fileName == "" {
		return kind
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": fileName}); v != "" {
		return v
	}
	return kind
}

// SetHeaders sets the safe-serving headers of a media response: its type
// (application/octet-stream when unknown), disposition, CSP, nosniff and
// cross-origin embedding (clients on other origins show media).
func SetHeaders(h http.Header, contentType, fileName string) {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", Disposition(contentType, fileName))
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Security-Policy", "sandbox;")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Referrer-Policy", "no-referrer")
}
