package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Names of the streams whose positions sync_stream_positions hands out.
const (
	StreamReceipts    = "receipts"
	StreamAccountData = "account_data"
	StreamPresence    = "presence"
)

// nextPos takes the next position of stream inside tx. The row stays
// locked until tx ends, so positions of one stream commit in order.
func nextPos(ctx context.Context, tx *sql.Tx, stream string) (int64, error) {
	var pos int64
	if err := tx.QueryRowContext(ctx, `UPDATE sync_stream_positions SET pos = pos + 1 WHERE stream = $1 RETURNING pos`, stream).Scan(&pos); err != nil {
		return 0, fmt.Errorf("next position of %s: %w", stream, err)
	}
	return pos, nil
}

// StreamPositions returns the current position of every stream of
// sync_stream_positions, and of the rooms, to-device and device-list
// streams, for the notifier to start from.
func (s *Store) StreamPositions(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT stream, pos FROM sync_stream_positions`)
	if err != nil {
		return nil, fmt.Errorf("read stream positions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var pos int64
		if err := rows.Scan(&name, &pos); err != nil {
			return nil, fmt.Errorf("read stream positions: %w", err)
		}
		out[name] = pos
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream positions: %w", err)
	}
	for name, q := range map[string]string{
		"rooms":        `SELECT COALESCE(MAX(sync_pos), 0) FROM sync_events`,
		"to_device":    `SELECT COALESCE(MAX(stream_id), 0) FROM device_inbox`,
		"device_lists": `SELECT COALESCE(MAX(stream_id), 0) FROM device_list_changes`,
	} {
		var pos int64
		if err := s.db.Read().QueryRowContext(ctx, q).Scan(&pos); err != nil {
			return nil, fmt.Errorf("read position of %s: %w", name, err)
		}
		out[name] = pos
	}
	return out, nil
}

// SyncEvent is one event of the rooms stream.
type SyncEvent struct {
	SyncPos   int64
	RoomID    string
	EventID   string
	StreamPos int64
	// Bump says the event counts as activity in the room (sliding sync's
	// bump_stamp; see migrations/0012).
	Bump bool
}

// MembershipChange is a user's membership in a room set by an event.
type MembershipChange struct {
	RoomID, UserID, Membership, EventID, Sender string
	StreamPos                                   int64
}

// SyncAppend is one event to append to the rooms stream at position
// SyncPos, with the membership changes it makes.
type SyncAppend struct {
	SyncPos   int64
	RoomID    string
	EventID   string
	StreamPos int64
	// Bump says the event counts as activity in the room (sliding sync's
	// bump_stamp).
	Bump    bool
	Changes []MembershipChange
	// Txn is the client transaction the event was sent with, if any,
	// recorded for unsigned.transaction_id (room_txns).
	Txn *TxnKey
}

// AppendSyncEvents writes events of the rooms stream at the positions the
// feeder gave them, in one transaction. Writing an event again (a
// redelivery) changes nothing.
func (s *Store) AppendSyncEvents(ctx context.Context, evs []SyncAppend) error {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		for _, ev := range evs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sync_events (sync_pos, room_id, event_id, stream_pos) VALUES ($1, $2, $3, $4)
				ON CONFLICT (event_id) DO NOTHING`, ev.SyncPos, ev.RoomID, ev.EventID, ev.StreamPos); err != nil {
				return fmt.Errorf("append %s: %w", ev.EventID, err)
			}
			if k := ev.Txn; k != nil {
				if _, err := tx.ExecContext(ctx, `INSERT INTO room_txns (user_id, device_id, scope, txn_id, room_id, event_id, created_ts)
					VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, device_id, scope, txn_id) DO NOTHING`,
					k.UserID, k.DeviceID, k.Scope, k.TxnID, ev.RoomID, ev.EventID, s.nowMS()); err != nil {
					return fmt.Errorf("record transaction id of %s: %w", ev.EventID, err)
				}
			}
			if ev.Bump {
				if _, err := tx.ExecContext(ctx, `INSERT INTO sync_room_bumps (room_id, sync_pos) VALUES ($1, $2)
					ON CONFLICT (room_id) DO UPDATE SET sync_pos = excluded.sync_pos WHERE excluded.sync_pos > sync_room_bumps.sync_pos`,
					ev.RoomID, ev.SyncPos); err != nil {
					return fmt.Errorf("record activity in %s: %w", ev.RoomID, err)
				}
			}
			for _, c := range ev.Changes {
				if _, err := tx.ExecContext(ctx, `INSERT INTO sync_memberships (room_id, user_id, membership, event_id, sender, sync_pos, stream_pos)
					VALUES ($1, $2, $3, $4, $5, $6, $7)
					ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id,
						sender = excluded.sender, sync_pos = excluded.sync_pos, stream_pos = excluded.stream_pos
					WHERE excluded.sync_pos >= sync_memberships.sync_pos`,
					c.RoomID, c.UserID, c.Membership, c.EventID, c.Sender, ev.SyncPos, c.StreamPos); err != nil {
					return fmt.Errorf("record membership of %s: %w", c.UserID, err)
				}
				// A remote user joining may have changed devices while no
				// room was shared, unheard of here: their list is fetched
				// again.
				if c.Membership == "join" {
					if _, err := tx.ExecContext(ctx, `UPDATE remote_device_lists SET stale = TRUE WHERE user_id = $1`, c.UserID); err != nil {
						return fmt.Errorf("mark device list of %s stale: %w", c.UserID, err)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append to the rooms stream: %w", err)
	}
	return nil
}

// SyncPositions returns the rooms positions of those of eventIDs already
// in the rooms stream.
func (s *Store) SyncPositions(ctx context.Context, eventIDs []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(eventIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(eventIDs))
	for i, id := range eventIDs {
		args[i] = id
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT event_id, sync_pos FROM sync_events WHERE event_id IN (`+storage.Placeholders(1, len(args))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read rooms positions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var pos int64
		if err := rows.Scan(&id, &pos); err != nil {
			return nil, fmt.Errorf("read rooms positions: %w", err)
		}
		out[id] = pos
	}
	return out, rows.Err()
}

// RoomLatest returns, for every room, the latest event of the rooms
// stream, for the notifier to start from.
func (s *Store) RoomLatest(ctx context.Context) (map[string]SyncEvent, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT e.room_id, e.sync_pos, e.event_id, e.stream_pos FROM sync_events e
		JOIN (SELECT room_id, MAX(sync_pos) AS sync_pos FROM sync_events GROUP BY room_id) m
		ON m.room_id = e.room_id AND m.sync_pos = e.sync_pos`)
	if err != nil {
		return nil, fmt.Errorf("read latest events of rooms: %w", err)
	}
	defer rows.Close()
	out := map[string]SyncEvent{}
	for rows.Next() {
		var e SyncEvent
		if err := rows.Scan(&e.RoomID, &e.SyncPos, &e.EventID, &e.StreamPos); err != nil {
			return nil, fmt.Errorf("read latest events of rooms: %w", err)
		}
		out[e.RoomID] = e
	}
	return out, rows.Err()
}

// RoomBumps returns the rooms stream position of each room's latest bump
// event (see migrations/0012).
func (s *Store) RoomBumps(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT room_id, sync_pos FROM sync_room_bumps`)
	if err != nil {
		return nil, fmt.Errorf("read room activity: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var room string
		var pos int64
		if err := rows.Scan(&room, &pos); err != nil {
			return nil, fmt.Errorf("read room activity: %w", err)
		}
		out[room] = pos
	}
	return out, rows.Err()
}

// RoomEventAt returns the latest event of roomID at or before rooms stream
// position pos (ok false when the room had none) — newest is false — or
// the first one after pos — newest is true, ok false when none.
func (s *Store) RoomEventAt(ctx context.Context, roomID string, pos int64, after bool) (ev SyncEvent, ok bool, err error) {
	q := `SELECT sync_pos, event_id, stream_pos FROM sync_events WHERE room_id = $1 AND sync_pos <= $2 ORDER BY sync_pos DESC LIMIT 1`
	if after {
		q = `SELECT sync_pos, event_id, stream_pos FROM sync_events WHERE room_id = $1 AND sync_pos > $2 ORDER BY sync_pos LIMIT 1`
	}
	ev.RoomID = roomID
	err = s.db.Read().QueryRowContext(ctx, q, roomID, pos).Scan(&ev.SyncPos, &ev.EventID, &ev.StreamPos)
	if errors.Is(err, sql.ErrNoRows) {
		return SyncEvent{}, false, nil
	}
	if err != nil {
		return SyncEvent{}, false, fmt.Errorf("read event of %s at %d: %w", roomID, pos, err)
	}
	return ev, true, nil
}

// Membership is a row of sync_memberships.
type Membership struct {
	MembershipChange
	SyncPos int64
}

const membershipColumns = `room_id, user_id, membership, event_id, sender, sync_pos, stream_pos`

func scanMemberships(rows *sql.Rows) ([]Membership, error) {
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		var m Membership
		if err := rows.Scan(&m.RoomID, &m.UserID, &m.Membership, &m.EventID, &m.Sender, &m.SyncPos, &m.StreamPos); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RoomMembers returns the memberships in roomIDs (all members of those
// rooms, whatever their membership).
func (s *Store) RoomMembers(ctx context.Context, roomIDs []string) ([]Membership, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	args := make([]any, len(roomIDs))
	for i, r := range roomIDs {
		args[i] = r
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+membershipColumns+` FROM sync_memberships WHERE room_id IN (`+storage.Placeholders(1, len(args))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read members of %s: %w", strings.Join(roomIDs, ","), err)
	}
	out, err := scanMemberships(rows)
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	return out, nil
}

// AllMemberships returns every membership of local users (user ids ending
// in ":"+serverName), for the notifier.
func (s *Store) AllMemberships(ctx context.Context, serverName string) ([]Membership, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+membershipColumns+` FROM sync_memberships
		WHERE user_id LIKE $1`, "%:"+serverName)
	if err != nil {
		return nil, fmt.Errorf("read memberships: %w", err)
	}
	out, err := scanMemberships(rows)
	if err != nil {
		return nil, fmt.Errorf("read memberships: %w", err)
	}
	return out, nil
}

// RoomSummary returns the numbers of joined and invited members of roomID
// and up to five heroes: members other than userID, joined or invited
// first, in the order they became members.
func (s *Store) RoomSummary(ctx context.Context, roomID, userID string) (joined, invited int, heroes []string, err error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT membership, COUNT(*) FROM sync_memberships WHERE room_id = $1 GROUP BY membership`, roomID)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("count members of %s: %w", roomID, err)
	}
	for rows.Next() {
		var m string
		var n int
		if err := rows.Scan(&m, &n); err != nil {
			rows.Close()
			return 0, 0, nil, fmt.Errorf("count members of %s: %w", roomID, err)
		}
		switch m {
		case "join":
			joined = n
		case "invite":
			invited = n
		}
	}
	rows.Close()
	rows, err = s.db.Read().QueryContext(ctx, `SELECT user_id FROM sync_memberships WHERE room_id = $1 AND user_id <> $2
		ORDER BY CASE WHEN membership IN ('join', 'invite') THEN 0 ELSE 1 END, sync_pos LIMIT 5`, roomID, userID)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("read heroes of %s: %w", roomID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return 0, 0, nil, fmt.Errorf("read heroes of %s: %w", roomID, err)
		}
		heroes = append(heroes, u)
	}
	return joined, invited, heroes, rows.Err()
}

// MembershipChangesIn returns the memberships in roomIDs changed after
// rooms position since and at or before upTo.
func (s *Store) MembershipChangesIn(ctx context.Context, roomIDs []string, since, upTo int64) ([]Membership, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	args := []any{since, upTo}
	for _, r := range roomIDs {
		args = append(args, r)
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+membershipColumns+` FROM sync_memberships
		WHERE sync_pos > $1 AND sync_pos <= $2 AND room_id IN (`+storage.Placeholders(3, len(roomIDs))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read membership changes: %w", err)
	}
	out, err := scanMemberships(rows)
	if err != nil {
		return nil, fmt.Errorf("read membership changes: %w", err)
	}
	return out, nil
}
