package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

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
// mediaapi.ErrNotFound. Answers that redirect (a Location part instead of
// the file) are not followed yet.
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
	if file.Header.Get("Location") != "" {
		return mediaapi.RemoteFile{}, fmt.Errorf("fetch media from %s: redirects are not followed", origin)
	}
	ok = true
	return mediaapi.RemoteFile{
		ContentType: file.Header.Get("Content-Type"),
		FileName:    file.FileName(),
		Body:        readCloser{Reader: file, Closer: resp.Body},
	}, nil
}

// readCloser reads one part and closes the whole answer.
type readCloser struct {
	io.Reader
	io.Closer
}

var _ mediaapi.RemoteFetcher = (*Component)(nil)
