package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Room is a room's row.
type Room struct {
	NID              int64
	RoomID           string
	Version          string
	StateSnapshotNID int64
}

// Room loads a room by id, or ErrNotFound.
func (s *Store) Room(ctx context.Context, roomID string) (Room, error) {
	r := Room{RoomID: roomID}
	err := s.db.Read().QueryRowContext(ctx, `SELECT room_nid, room_version, state_snapshot_nid FROM roomserver_rooms WHERE room_id = $1`, roomID).
		Scan(&r.NID, &r.Version, &r.StateSnapshotNID)
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, ErrNotFound
	}
	if err != nil {
		return Room{}, fmt.Errorf("load room %s: %w", roomID, err)
	}
	return r, nil
}

// InsertRoom creates a room's row and returns its nid.
func (s *Store) InsertRoom(ctx context.Context, tx *sql.Tx, roomID, version string) (int64, error) {
	var nid int64
	err := tx.QueryRowContext(ctx, `INSERT INTO roomserver_rooms (room_id, room_version, created_ts) VALUES ($1, $2, $3) RETURNING room_nid`,
		roomID, version, time.Now().UnixMilli()).Scan(&nid)
	if s.db.Dialect.IsUniqueViolation(err) {
		return 0, fmt.Errorf("insert room %s: %w", roomID, ErrRoomExists)
	}
	if err != nil {
		return 0, fmt.Errorf("insert room %s: %w", roomID, err)
	}
	return nid, nil
}

// SetCurrentState points the room at a new current state snapshot.
func (s *Store) SetCurrentState(ctx context.Context, tx *sql.Tx, roomNID, snapshotNID int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE roomserver_rooms SET state_snapshot_nid = $1 WHERE room_nid = $2`, snapshotNID, roomNID); err != nil {
		return fmt.Errorf("set current state: %w", err)
	}
	return nil
}

// RoomVersionOf returns the version of the room with the given nid.
func (s *Store) RoomVersionOf(ctx context.Context, roomNID int64) (string, error) {
	var v string
	err := s.db.Read().QueryRowContext(ctx, `SELECT room_version FROM roomserver_rooms WHERE room_nid = $1`, roomNID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("room nid %d: %w", roomNID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("load room version: %w", err)
	}
	return v, nil
}
