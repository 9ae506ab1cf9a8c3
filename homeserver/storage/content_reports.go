package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// ContentReport is a user's report of an event, or of a whole room, to
// the server's admins.
type ContentReport struct {
	// ID orders reports by arrival; set by AddContentReport.
	ID int64
	// ReceivedTS is when the report arrived (ms); set by AddContentReport.
	ReceivedTS int64
	// UserID is the reporting user.
	UserID string
	RoomID string
	// EventID is the reported event; empty for a report of the room.
	EventID string
	// Reason is the reporter's words; nil when none were given.
	Reason *string
	// Score rates the content from -100 (most offensive) to 0; nil when
	// not given.
	Score *int64
}

// AddContentReport stores a report and returns its id.
func (s *Store) AddContentReport(ctx context.Context, r ContentReport) (int64, error) {
	var id int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO content_reports (received_ts, user_id, room_id, event_id, reason, score)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			s.nowMS(), r.UserID, r.RoomID, r.EventID, r.Reason, r.Score).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("store content report: %w", err)
	}
	return id, nil
}

// ContentReports returns up to limit reports with an id above after,
// oldest first, for admins to review; roomID, when not empty, keeps that
// room's only.
func (s *Store) ContentReports(ctx context.Context, roomID string, after int64, limit int) ([]ContentReport, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id, received_ts, user_id, room_id, event_id, reason, score
		FROM content_reports WHERE id > $1 AND ($2 = '' OR room_id = $3) ORDER BY id LIMIT $4`,
		after, roomID, roomID, limit)
	if err != nil {
		return nil, fmt.Errorf("list content reports: %w", err)
	}
	defer rows.Close()
	var out []ContentReport
	for rows.Next() {
		var r ContentReport
		var reason sql.NullString
		var score sql.NullInt64
		if err := rows.Scan(&r.ID, &r.ReceivedTS, &r.UserID, &r.RoomID, &r.EventID, &reason, &score); err != nil {
			return nil, fmt.Errorf("list content reports: %w", err)
		}
		if reason.Valid {
			r.Reason = &reason.String
		}
		if score.Valid {
			r.Score = &score.Int64
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list content reports: %w", err)
	}
	return out, nil
}
