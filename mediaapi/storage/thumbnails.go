package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Thumbnail is a row of media_thumbnails: one thumbnail of a media item.
type Thumbnail struct {
	// ReqWidth, ReqHeight and Method are the size asked for (a
	// configured size, or a request's) and how it was made ("crop" or
	// "scale"); together with the media item they are the key.
	ReqWidth, ReqHeight int
	Method              string
	// Animated is set for an animated thumbnail (part of the key).
	Animated bool
	// Width and Height are the size made.
	Width, Height int
	ContentType   string
	Size          int64
	// SHA256 names the file, as for media.
	SHA256 string
}

// PutThumbnail records a thumbnail of a media item; a thumbnail already
// recorded under the same key is kept (two processes made the same one).
func (s *Store) PutThumbnail(ctx context.Context, origin, mediaID string, t Thumbnail) error {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO media_thumbnails (origin, media_id, req_width, req_height, method, animated,
			width, height, content_type, size_bytes, sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (origin, media_id, req_width, req_height, method, animated) DO NOTHING`,
			origin, mediaID, t.ReqWidth, t.ReqHeight, t.Method, t.Animated, t.Width, t.Height, t.ContentType, t.Size, t.SHA256)
		return err
	})
	if err != nil {
		return fmt.Errorf("put thumbnail: %w", err)
	}
	return nil
}

// GetThumbnail returns the thumbnail of a media item made for a size,
// method and animation, or ErrNotFound.
func (s *Store) GetThumbnail(ctx context.Context, origin, mediaID string, reqWidth, reqHeight int, method string, animated bool) (Thumbnail, error) {
	var t Thumbnail
	err := s.db.Read().QueryRowContext(ctx, `SELECT req_width, req_height, method, animated, width, height, content_type, size_bytes, sha256
		FROM media_thumbnails WHERE origin = $1 AND media_id = $2 AND req_width = $3 AND req_height = $4 AND method = $5 AND animated = $6`,
		origin, mediaID, reqWidth, reqHeight, method, animated).Scan(&t.ReqWidth, &t.ReqHeight, &t.Method, &t.Animated, &t.Width, &t.Height, &t.ContentType, &t.Size, &t.SHA256)
	if errors.Is(err, sql.ErrNoRows) {
		return Thumbnail{}, ErrNotFound
	}
	if err != nil {
		return Thumbnail{}, fmt.Errorf("get thumbnail: %w", err)
	}
	return t, nil
}
