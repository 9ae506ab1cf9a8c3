package tests

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"
)

// mediaResp is a raw media answer: status, headers, body bytes, and the
// body as JSON when it is.
type mediaResp struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// errcode returns the Matrix errcode of the answer, "" when none.
func (r mediaResp) errcode() string { s, _ := r.JSON["errcode"].(string); return s }

// mediaDo sends a request with headers (name, value pairs) and returns the
// whole answer; token may be empty.
func (s *Server) mediaDo(method, path, token string, body []byte, headers ...string) mediaResp {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url()+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := mediaResp{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &out.JSON)
	}
	return out
}

// expect fails the test unless the answer has status and errcode ("" for
// none).
func (r mediaResp) expect(t testing.TB, status int, errcode string) mediaResp {
	t.Helper()
	if r.Status != status || r.errcode() != errcode {
		t.Fatalf("got %d %q, want %d %q; body: %.300s", r.Status, r.errcode(), status, errcode, r.Body)
	}
	return r
}

// upload uploads data as contentType with c's token through mautrix and
// returns its content URI.
func upload(t testing.TB, c *mautrix.Client, data []byte, contentType, name string) id.ContentURI {
	t.Helper()
	resp, err := c.UploadMedia(ctx(), mautrix.ReqUploadMedia{ContentBytes: data, ContentType: contentType, FileName: name})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	return resp.ContentURI
}

// downloadPath returns the authenticated download path of uri.
func downloadPath(uri id.ContentURI) string {
	return "/_matrix/client/v1/media/download/" + uri.Homeserver + "/" + uri.FileID
}

// RegisterAdmin creates localpart as a server admin and returns its
// client.
func (s *Server) RegisterAdmin(localpart string) *mautrix.Client {
	s.t.Helper()
	admin := &synapseadmin.Client{Client: s.Client()}
	resp, err := admin.SharedSecretRegister(ctx(), sharedSecret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart, Password: testPassword, Admin: true,
	})
	if err != nil {
		s.t.Fatalf("register admin %s: %v", localpart, err)
	}
	c := s.Client()
	c.SetCredentials(resp.UserID, resp.AccessToken)
	return c
}

// testImage is a w×h gradient with a solid square, so that scaling and
// cropping have something to work on.
func testImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return img
}

// encodeImage encodes a w×h test image in format (png, jpeg, gif).
func encodeImage(t testing.TB, format string, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&buf, testImage(w, h))
	case "jpeg":
		err = jpeg.Encode(&buf, testImage(w, h), nil)
	case "gif":
		// Two frames: the thumbnail is made of the first.
		img := testImage(w, h)
		pal := image.NewPaletted(img.Bounds(), []color.Color{color.Black, color.White, color.NRGBA{255, 0, 0, 255}})
		pal2 := image.NewPaletted(img.Bounds(), pal.Palette)
		err = gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{pal, pal2}, Delay: []int{10, 10}})
	default:
		t.Fatalf("unknown format %s", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
