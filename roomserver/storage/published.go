package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The values of roomserver_published_rooms.visibility.
const (
	VisibilityPublic  = "public"
	VisibilityPrivate = "private"
)

// PublishedRoom is a room of the public directory, with what it takes to
// list it without reading its state: the count of joined members, and its
// current state snapshot (which changes whenever its state does).
type PublishedRoom struct {
	NID         int64
	RoomID      string
	SnapshotNID int64
	Joined      int
}

// SetVisibility records a room's visibility in the public directory.
func (s *Store) SetVisibility(ctx context.Context, roomNID int64, visibility string) error {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO roomserver_published_rooms (room_nid, visibility, updated_ts) VALUES ($1, $2, $3)
			ON CONFLICT (room_nid) DO UPDATE SET visibility = excluded.visibility, updated_ts = excluded.updated_ts`,
			roomNID, visibility, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("set room visibility: %w", err)
	}
	return nil
}

// Visibility returns a room's visibility; VisibilityPrivate when none was
// recorded.
func (s *Store) Visibility(ctx context.Context, roomNID int64) (string, error) {
	var v string
	err := s.db.Read().QueryRowContext(ctx, `SELECT visibility FROM roomserver_published_rooms WHERE room_nid = $1`, roomNID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return VisibilityPrivate, nil
	}
	if err != nil {
		return "", fmt.Errorf("load room visibility: %w", err)
	}
	return v, nil
}

// PublishedRooms returns the public rooms that have at least one joined
// member, in no particular order.
func (s *Store) PublishedRooms(ctx context.Context) ([]PublishedRoom, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT r.room_nid, r.room_id, r.state_snapshot_nid, COUNT(m.user_id)
		FROM roomserver_published_rooms p
		JOIN roomserver_rooms r ON r.room_nid = p.room_nid
		JOIN roomserver_memberships m ON m.room_nid = p.room_nid
		WHERE p.visibility = $1 AND m.membership = $2
		GROUP BY r.room_nid, r.room_id, r.state_snapshot_nid`, VisibilityPublic, "join")
	if err != nil {
		return nil, fmt.Errorf("list published rooms: %w", err)
	}
	defer rows.Close()
	var out []PublishedRoom
	for rows.Next() {
		var p PublishedRoom
		if err := rows.Scan(&p.NID, &p.RoomID, &p.SnapshotNID, &p.Joined); err != nil {
			return nil, fmt.Errorf("scan published room: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list published rooms: %w", err)
	}
	return out, nil
}
