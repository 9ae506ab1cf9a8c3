package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/federation/internal/transport"
	mediaapi "github.com/matrix-gouv/homeserver/mediaapi/api"
)

// maxMediaMetadataBytes bounds the JSON part of a media answer.
const maxMediaMetadataBytes = 64 << 10

// FetchMedia implements mediaapi/api.RemoteFetcher: GET
// /_matrix/federation/v1/media/download/{mediaId} on origin, through the
// federation client (allow-list, TLS checks, X-Matrix), the multipart
// answer parsed. A server off the list, and a 404, are
// mediaapi.ErrNotFound. An answer that redirects (a Location header in
// place of the file part, as the spec allows) is followed once, to an
// https URL whose host the allow-list lets this server contact (a
// closed federation lists its members' media hosts too) and, unless
// private addresses are allowed, on a public address.
func (c *Component) FetchMedia(ctx context.Context, origin, mediaID string) (mediaapi.RemoteFile, error) {
	if !c.cfg.ServerAllowed(origin) || origin == string(c.serverName) {
		return mediaapi.RemoteFile{}, mediaapi.ErrNotFound
	}
	resp, err := c.client.DownloadMedia(ctx, c.serverName, spec.ServerName(origin), mediaID)
	if errors.Is(err, transport.ErrNotAllowed) {
		return mediaapi.RemoteFile{}, mediaapi.ErrNotFound
	}
	if err != nil {
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: %w", origin, err)
	}
	ok := false
	defer func() {
		if !ok {
			resp.Body.Close()
		}
	}()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return mediaapi.RemoteFile{}, mediaapi.ErrNotFound
	case resp.StatusCode != http.StatusOK:
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: HTTP %d", origin, resp.StatusCode)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: not a multipart/mixed answer", origin)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: metadata part: %w", origin, err)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(meta, maxMediaMetadataBytes)); err != nil {
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: metadata part: %w", origin, err)
	}
	file, err := mr.NextPart()
	if err != nil {
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: file part: %w", origin, err)
	}
	if loc := file.Header.Get("Location"); loc != "" {
		return c.fetchRedirected(ctx, origin, loc)
	}
	ok = true
	return mediaapi.RemoteFile{
		ContentType: file.Header.Get("Content-Type"),
		FileName:    file.FileName(),
		Body:        readCloser{Reader: file, Closer: resp.Body},
	}, nil
}

// fetchRedirected fetches the file a media answer of origin redirected
// to, through the federation tripper (its policy, no further redirect).
func (c *Component) fetchRedirected(ctx context.Context, origin, location string) (mediaapi.RemoteFile, error) {
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: redirect to a location that is not an https URL", origin)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: redirect: %w", origin, err)
	}
	resp, err := c.tripper.RoundTrip(req)
	if errors.Is(err, transport.ErrNotAllowed) {
		c.log.WithFields(map[string]any{fieldOrigin: origin, "host": u.Hostname()}).Info("a media redirect to a host the allow-list does not list")
		return mediaapi.RemoteFile{}, mediaapi.ErrNotFound
	}
	if err != nil {
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: redirect: %w", origin, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return mediaapi.RemoteFile{}, mediaapi.ErrNotFound
		}
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: redirect: HTTP %d", origin, resp.StatusCode)
	}
	var name string
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		name = params["filename"]
	}
	return mediaapi.RemoteFile{ContentType: resp.Header.Get("Content-Type"), FileName: name, Body: resp.Body}, nil
}

// readCloser reads one part and closes the whole answer.
type readCloser struct {
	io.Reader
	io.Closer
}

var _ mediaapi.RemoteFetcher = (*Component)(nil)
