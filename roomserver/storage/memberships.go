package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// SetMembership records a user's current membership in a room.
func (s *Store) SetMembership(ctx context.Context, tx *sql.Tx, roomNID int64, userID, membership string, eventNID int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO roomserver_memberships (room_nid, user_id, membership, event_nid) VALUES ($1, $2, $3, $4)
		ON CONFLICT (room_nid, user_id) DO UPDATE SET membership = excluded.membership, event_nid = excluded.event_nid`,
		roomNID, userID, membership, eventNID); err != nil {
		return fmt.Errorf("set membership: %w", err)
	}
	return nil
}

// DeleteMembership forgets a membership that a resolution removed.
func (s *Store) DeleteMembership(ctx context.Context, tx *sql.Tx, roomNID int64, userID string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM roomserver_memberships WHERE room_nid = $1 AND user_id = $2`, roomNID, userID); err != nil {
		return fmt.Errorf("delete membership: %w", err)
	}
	return nil
}

// Membership returns a user's current membership and its event nid; ""
// when none.
func (s *Store) Membership(ctx context.Context, roomNID int64, userID string) (string, int64, error) {
	var m string
	var nid int64
	err := s.db.Read().QueryRowContext(ctx, `SELECT membership, event_nid FROM roomserver_memberships WHERE room_nid = $1 AND user_id = $2`, roomNID, userID).Scan(&m, &nid)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("load membership: %w", err)
	}
	return m, nid, nil
}

// RoomsOf returns the ids of the rooms where userID's membership is m.
func (s *Store) RoomsOf(ctx context.Context, userID, m string) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT r.room_id FROM roomserver_memberships m JOIN roomserver_rooms r ON r.room_nid = m.room_nid
		WHERE m.user_id = $1 AND m.membership = $2 ORDER BY r.room_nid`, userID, m)
	if err != nil {
		return nil, fmt.Errorf("list rooms of user: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan room id: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// MembersWith returns the user ids of the room's members whose current
// membership is m.
func (s *Store) MembersWith(ctx context.Context, roomNID int64, m string) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT user_id FROM roomserver_memberships WHERE room_nid = $1 AND membership = $2`, roomNID, m)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan member: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// HasJoinedMemberOf reports whether a user of server is joined to the
// room: read in tx when given (to see the transaction's own changes),
// else from committed state.
func (s *Store) HasJoinedMemberOf(ctx context.Context, tx *sql.Tx, roomNID int64, server string) (bool, error) {
	// A user id ends in ":" and its server name, and a server name holds
	// neither % nor _; escaping them anyway keeps the pattern exact.
	pattern := "%:" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(server)
	const q = `SELECT 1 FROM roomserver_memberships WHERE room_nid = $1 AND membership = $2 AND user_id LIKE $3 ESCAPE '\' LIMIT 1`
	var row *sql.Row
	if tx != nil {
		row = tx.QueryRowContext(ctx, q, roomNID, "join", pattern)
	} else {
		row = s.db.Read().QueryRowContext(ctx, q, roomNID, "join", pattern)
	}
	var one int
	switch err := row.Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("find a joined member of %s: %w", server, err)
	}
	return true, nil
}
