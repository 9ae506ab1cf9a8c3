package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// PutFilter stores a sync filter for userID and returns its id.
func (s *Store) PutFilter(ctx context.Context, userID string, filterJSON []byte) (string, error) {
	var id int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO sync_filters (user_id, filter_json) VALUES ($1, $2) RETURNING filter_id`,
			userID, string(filterJSON)).Scan(&id)
	})
	if err != nil {
		return "", fmt.Errorf("store filter of %s: %w", userID, err)
	}
	return strconv.FormatInt(id, 10), nil
}

// GetFilter returns userID's filter filterID, or ErrNotFound.
func (s *Store) GetFilter(ctx context.Context, userID, filterID string) ([]byte, error) {
	id, err := strconv.ParseInt(filterID, 10, 64)
	if err != nil {
		return nil, ErrNotFound
	}
	var f string
	err = s.db.Read().QueryRowContext(ctx, `SELECT filter_json FROM sync_filters WHERE filter_id = $1 AND user_id = $2`, id, userID).Scan(&f)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read filter %s of %s: %w", filterID, userID, err)
	}
	return []byte(f), nil
}
