package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Media is a row of the media table.
type Media struct {
	// Origin is the server that owns the media id.
	Origin  string
	MediaID string
	// UserID is the local uploader; "" for remote media.
	UserID      string
	ContentType string
	// UploadName is the file name given at upload; "" when none.
	UploadName string
	Size       int64
	// SHA256 is the content's lowercase hex SHA-256; "" while pending.
	SHA256    string
	CreatedTS int64
	// UploadedTS is when the content arrived (ms); 0 while an async
	// upload is pending.
	UploadedTS int64
	// ExpiresTS is when a pending async upload lapses (ms); 0 once
	// uploaded.
	ExpiresTS   int64
	Quarantined bool
	// LastAccessTS is when it was last served (remote media only) or
	// stored.
	LastAccessTS int64
}

// Pending reports whether the media id was created and its content has
// not arrived yet.
func (m Media) Pending() bool { return m.UploadedTS == 0 }

const mediaColumns = `origin, media_id, user_id, content_type, upload_name, size_bytes, sha256,
	created_ts, uploaded_ts, expires_ts, quarantined, last_access_ts`

func scanMedia(row interface{ Scan(...any) error }) (Media, error) {
	var m Media
	var uploaded, expires sql.NullInt64
	err := row.Scan(&m.Origin, &m.MediaID, &m.UserID, &m.ContentType, &m.UploadName, &m.Size, &m.SHA256,
		&m.CreatedTS, &uploaded, &expires, &m.Quarantined, &m.LastAccessTS)
	m.UploadedTS, m.ExpiresTS = uploaded.Int64, expires.Int64
	return m, err
}

// checkQuotaTx fails with ErrQuotaExceeded when userID's uploads plus
// size would pass quota (-1: no quota).
func checkQuotaTx(ctx context.Context, tx *sql.Tx, userID string, size, quota int64) error {
	if quota < 0 {
		return nil
	}
	var used int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(size_bytes), 0) FROM media WHERE user_id = $1`, userID).Scan(&used); err != nil {
		return fmt.Errorf("read usage: %w", err)
	}
	if used+size > quota {
		return ErrQuotaExceeded
	}
	return nil
}

// InsertMedia stores m, whose content has arrived (CreatedTS, UploadedTS
// and LastAccessTS are set to now). For a local upload (m.UserID set) it
// fails with ErrQuotaExceeded, storing nothing, when the user's uploads
// would pass quota bytes (-1: no quota). A taken media id is ErrExists.
func (s *Store) InsertMedia(ctx context.Context, m Media, quota int64) error {
	now := s.nowMS()
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		if m.UserID != "" {
			if err := checkQuotaTx(ctx, tx, m.UserID, m.Size, quota); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO media (origin, media_id, user_id, content_type, upload_name,
			size_bytes, sha256, created_ts, uploaded_ts, expires_ts, quarantined, last_access_ts)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11)`,
			m.Origin, m.MediaID, m.UserID, m.ContentType, m.UploadName, m.Size, m.SHA256, now, now, m.Quarantined, now)
		if s.db.Dialect.IsUniqueViolation(err) {
			return ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("insert media: %w", err)
	}
	return nil
}

// CreatePending reserves a media id for userID's async upload, lapsing at
// expiresTS (ms). It fails with ErrTooManyPending when the user already
// has maxPending reservations that have not lapsed.
func (s *Store) CreatePending(ctx context.Context, origin, mediaID, userID string, expiresTS int64, maxPending int) error {
	now := s.nowMS()
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM media
			WHERE user_id = $1 AND uploaded_ts IS NULL AND expires_ts > $2`, userID, now).Scan(&n); err != nil {
			return fmt.Errorf("count pending: %w", err)
		}
		if n >= maxPending {
			return ErrTooManyPending
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO media (origin, media_id, user_id, created_ts, expires_ts, last_access_ts)
			VALUES ($1, $2, $3, $4, $5, $6)`, origin, mediaID, userID, now, expiresTS, now)
		if s.db.Dialect.IsUniqueViolation(err) {
			return ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create pending media: %w", err)
	}
	return nil
}

// CompletePending records the content of a pending async upload: m names
// the media item and carries the content's type, name, size and hash. It
// fails with ErrAlreadyUploaded when the content arrived first by another
// request, ErrNotFound when there is no such media id, and
// ErrQuotaExceeded as InsertMedia does.
func (s *Store) CompletePending(ctx context.Context, m Media, quota int64) error {
	now := s.nowMS()
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		if err := checkQuotaTx(ctx, tx, m.UserID, m.Size, quota); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE media SET content_type = $1, upload_name = $2, size_bytes = $3,
			sha256 = $4, uploaded_ts = $5, expires_ts = NULL, quarantined = $6, last_access_ts = $7
			WHERE origin = $8 AND media_id = $9 AND uploaded_ts IS NULL`,
			m.ContentType, m.UploadName, m.Size, m.SHA256, now, m.Quarantined, now, m.Origin, m.MediaID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM media WHERE origin = $1 AND media_id = $2`, m.Origin, m.MediaID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return ErrAlreadyUploaded
	})
	if err != nil {
		return fmt.Errorf("complete pending media: %w", err)
	}
	return nil
}

// GetMedia returns a media item, pending or not, or ErrNotFound.
func (s *Store) GetMedia(ctx context.Context, origin, mediaID string) (Media, error) {
	m, err := scanMedia(s.db.Read().QueryRowContext(ctx, `SELECT `+mediaColumns+`
		FROM media WHERE origin = $1 AND media_id = $2`, origin, mediaID))
	if errors.Is(err, sql.ErrNoRows) {
		return Media{}, ErrNotFound
	}
	if err != nil {
		return Media{}, fmt.Errorf("get media: %w", err)
	}
	return m, nil
}

// TouchMedia records that a media item was served at ts (ms), for the
// remote cache purge.
func (s *Store) TouchMedia(ctx context.Context, origin, mediaID string, ts int64) error {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE media SET last_access_ts = $1 WHERE origin = $2 AND media_id = $3`, ts, origin, mediaID)
		return err
	})
	if err != nil {
		return fmt.Errorf("touch media: %w", err)
	}
	return nil
}

// UserUsage returns the bytes userID has uploaded, counted once per media
// item (two uploads of one file count twice, though it is stored once).
func (s *Store) UserUsage(ctx context.Context, userID string) (int64, error) {
	var used int64
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COALESCE(SUM(size_bytes), 0) FROM media WHERE user_id = $1`, userID).Scan(&used); err != nil {
		return 0, fmt.Errorf("read media usage: %w", err)
	}
	return used, nil
}

// SetQuarantined quarantines (or releases) one media item; it fails with
// ErrNotFound when there is none.
func (s *Store) SetQuarantined(ctx context.Context, origin, mediaID string, quarantined bool) error {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE media SET quarantined = $1 WHERE origin = $2 AND media_id = $3`, quarantined, origin, mediaID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("quarantine media: %w", err)
	}
	return nil
}

// QuarantineUser quarantines every media item userID uploaded and returns
// how many were not quarantined before.
func (s *Store) QuarantineUser(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE media SET quarantined = $1 WHERE user_id = $2 AND quarantined = $3`, true, userID, false)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("quarantine user media: %w", err)
	}
	return n, nil
}

// UserMedia returns up to limit of userID's media items, newest first,
// skipping the first from, and how many there are in all.
func (s *Store) UserMedia(ctx context.Context, userID string, from, limit int) ([]Media, int, error) {
	var total int
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM media WHERE user_id = $1`, userID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count user media: %w", err)
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE user_id = $1
		ORDER BY created_ts DESC, media_id LIMIT $2 OFFSET $3`, userID, limit, from)
	if err != nil {
		return nil, 0, fmt.Errorf("list user media: %w", err)
	}
	out, err := collectMedia(rows)
	if err != nil {
		return nil, 0, fmt.Errorf("list user media: %w", err)
	}
	return out, total, nil
}

// MediaByHash returns the media items whose content has the SHA-256 sha
// (lowercase hex), for admins looking a file up by its checksum.
func (s *Store) MediaByHash(ctx context.Context, sha string) ([]Media, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE sha256 = $1
		ORDER BY created_ts, origin, media_id`, sha)
	if err != nil {
		return nil, fmt.Errorf("media by hash: %w", err)
	}
	out, err := collectMedia(rows)
	if err != nil {
		return nil, fmt.Errorf("media by hash: %w", err)
	}
	return out, nil
}

// RemoteMediaBefore returns the remote media items (origin not local)
// last served before ts (ms), at most limit of them.
func (s *Store) RemoteMediaBefore(ctx context.Context, local string, ts int64, limit int) ([]Media, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+mediaColumns+` FROM media
		WHERE origin <> $1 AND last_access_ts < $2 ORDER BY last_access_ts LIMIT $3`, local, ts, limit)
	if err != nil {
		return nil, fmt.Errorf("list old remote media: %w", err)
	}
	out, err := collectMedia(rows)
	if err != nil {
		return nil, fmt.Errorf("list old remote media: %w", err)
	}
	return out, nil
}

// ExpiredPending returns up to limit pending async uploads that lapsed
// before ts (ms).
func (s *Store) ExpiredPending(ctx context.Context, ts int64, limit int) ([]Media, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+mediaColumns+` FROM media
		WHERE uploaded_ts IS NULL AND expires_ts < $1 LIMIT $2`, ts, limit)
	if err != nil {
		return nil, fmt.Errorf("list lapsed uploads: %w", err)
	}
	out, err := collectMedia(rows)
	if err != nil {
		return nil, fmt.Errorf("list lapsed uploads: %w", err)
	}
	return out, nil
}

func collectMedia(rows *sql.Rows) ([]Media, error) {
	defer rows.Close()
	var out []Media
	for rows.Next() {
		m, err := scanMedia(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// DeleteMedia deletes a media item and its thumbnails' rows, and returns
// the SHA-256 of every file they pointed at that nothing else points at
// any more: the caller removes those files. ErrNotFound when there is no
// such item.
func (s *Store) DeleteMedia(ctx context.Context, origin, mediaID string) ([]string, error) {
	var orphans []string
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		orphans = nil
		var hashes []string
		var sha string
		err := tx.QueryRowContext(ctx, `SELECT sha256 FROM media WHERE origin = $1 AND media_id = $2`, origin, mediaID).Scan(&sha)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if sha != "" {
			hashes = append(hashes, sha)
		}
		rows, err := tx.QueryContext(ctx, `SELECT sha256 FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, origin, mediaID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return err
			}
			hashes = append(hashes, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, origin, mediaID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM media WHERE origin = $1 AND media_id = $2`, origin, mediaID); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, h := range hashes {
			if seen[h] {
				continue
			}
			seen[h] = true
			used, err := hashUsedTx(ctx, tx, h)
			if err != nil {
				return err
			}
			if !used {
				orphans = append(orphans, h)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete media: %w", err)
	}
	return orphans, nil
}

// hashUsedTx reports whether a media item or thumbnail points at the file
// with SHA-256 sha.
func hashUsedTx(ctx context.Context, tx *sql.Tx, sha string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM media WHERE sha256 = $1)
		+ (SELECT COUNT(*) FROM media_thumbnails WHERE sha256 = $2)`, sha, sha).Scan(&n)
	return n > 0, err
}

// HashUsed reports whether any media item or thumbnail points at the file
// with SHA-256 sha.
func (s *Store) HashUsed(ctx context.Context, sha string) (bool, error) {
	var n int
	err := s.db.Read().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM media WHERE sha256 = $1)
		+ (SELECT COUNT(*) FROM media_thumbnails WHERE sha256 = $2)`, sha, sha).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check file use: %w", err)
	}
	return n > 0, nil
}
