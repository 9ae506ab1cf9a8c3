// Package api is the media component's face to the other components: the
// types and interfaces they may use, and nothing else.
package api

import (
	"context"
	"errors"
	"io"
)

// ErrNotFound: there is no such media (or it may not be given out);
// RemoteFetcher returns it so that the client gets 404 rather than 502.
var ErrNotFound = errors.New("remote media not found")

// RemoteFile is a file fetched from, or served to, another server.
type RemoteFile struct {
	// ContentType is the file's type as the origin gave it.
	ContentType string
	// FileName is the file's name as uploaded; "" when none.
	FileName string
	// Body is the content; the receiver closes it.
	Body io.ReadCloser
}

// RemoteFetcher fetches media of other servers over federation
// (GET /_matrix/federation/v1/media/download/{mediaId}, the multipart
// answer already parsed). The federation component implements it; the
// media component checks its allow-list through it (a server not allowed
// is ErrNotFound). A nil RemoteFetcher means remote media is not
// available: requests for it answer 404 M_NOT_FOUND.
type RemoteFetcher interface {
	// FetchMedia returns the content of mxc://origin/mediaID, or
	// ErrNotFound, or another error when origin could not be
	// reached (the client then gets 502).
	FetchMedia(ctx context.Context, origin, mediaID string) (RemoteFile, error)
}

// LocalMedia is what the federation component needs to serve this
// server's media to other servers (GET /_matrix/federation/v1/media/…):
// the media component implements it.
type LocalMedia interface {
	// OpenLocalMedia returns the content of a media item uploaded to this
	// server, or ErrNotFound when there is none (unknown, pending,
	// quarantined).
	OpenLocalMedia(ctx context.Context, mediaID string) (RemoteFile, error)
}
