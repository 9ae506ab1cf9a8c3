package keys

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// backupVersionJSON is a backup version as GET /room_keys/version shows it.
type backupVersionJSON struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int64           `json:"count"`
	Etag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// backupVersionBody is the body of POST and PUT /room_keys/version.
type backupVersionBody struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   *string         `json:"version"`
}

func (b backupVersionBody) check() error {
	if b.Algorithm == "" {
		return httputil.MissingParam("algorithm is required")
	}
	if !isObject(b.AuthData) {
		return httputil.MissingParam("auth_data is required and must be an object")
	}
	return nil
}

func isObject(raw json.RawMessage) bool {
	t := strings.TrimSpace(string(raw))
	return t != "" && t[0] == '{'
}

// errNoBackupVersion is the answer for a version that does not exist.
func errNoBackupVersion() error { return httputil.NotFound("unknown backup version") }

// parseVersion reads a version number; anything else names no version.
func parseVersion(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, errNoBackupVersion()
	}
	return v, nil
}

// CreateBackupVersion is POST /room_keys/version: a new version, which
// becomes the current one.
func (h *Handlers) CreateBackupVersion(r *http.Request) (any, error) {
	var req backupVersionBody
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if err := req.check(); err != nil {
		return nil, err
	}
	authData, err := canonicalJSON(req.AuthData)
	if err != nil {
		return nil, httputil.BadJSON("auth_data: %v", err)
	}
	v, err := h.store.CreateBackupVersion(r.Context(), auth.DeviceFrom(r.Context()).UserID, req.Algorithm, authData)
	if err != nil {
		return nil, err
	}
	return map[string]string{"version": strconv.FormatInt(v, 10)}, nil
}

// BackupVersion is GET /room_keys/version (the current version) and GET
// /room_keys/version/{version}.
func (h *Handlers) BackupVersion(r *http.Request) (any, error) {
	var v int64
	if s := httputil.PathParam(r, "version"); s != "" {
		var err error
		if v, err = parseVersion(s); err != nil {
			return nil, err
		}
	}
	b, err := h.store.BackupVersionOf(r.Context(), auth.DeviceFrom(r.Context()).UserID, v)
	if errors.Is(err, storage.ErrNotFound) {
		if v == 0 {
			return nil, httputil.NotFound("no current backup version")
		}
		return nil, errNoBackupVersion()
	}
	if err != nil {
		return nil, err
	}
	return backupVersionJSON{Algorithm: b.Algorithm, AuthData: json.RawMessage(b.AuthData), Count: b.Count,
		Etag: strconv.FormatInt(b.Etag, 10), Version: strconv.FormatInt(b.Version, 10)}, nil
}

// UpdateBackupVersion is PUT /room_keys/version/{version}: new auth_data
// for a version; the algorithm cannot change.
func (h *Handlers) UpdateBackupVersion(r *http.Request) (any, error) {
	path := httputil.PathParam(r, "version")
	v, err := parseVersion(path)
	if err != nil {
		return nil, err
	}
	var req backupVersionBody
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if err := req.check(); err != nil {
		return nil, err
	}
	if req.Version != nil && *req.Version != path {
		return nil, httputil.InvalidParam("the version in the body does not match the path")
	}
	userID := auth.DeviceFrom(r.Context()).UserID
	b, err := h.store.BackupVersionOf(r.Context(), userID, v)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoBackupVersion()
	}
	if err != nil {
		return nil, err
	}
	if b.Algorithm != req.Algorithm {
		return nil, httputil.InvalidParam("the algorithm of a backup version cannot change")
	}
	authData, err := canonicalJSON(req.AuthData)
	if err != nil {
		return nil, httputil.BadJSON("auth_data: %v", err)
	}
	if err := h.store.UpdateBackupAuthData(r.Context(), userID, v, authData); errors.Is(err, storage.ErrNotFound) {
		return nil, errNoBackupVersion()
	} else if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// DeleteBackupVersion is DELETE /room_keys/version/{version}: the version
// and its keys go; its number is not reused.
func (h *Handlers) DeleteBackupVersion(r *http.Request) (any, error) {
	v, err := parseVersion(httputil.PathParam(r, "version"))
	if err != nil {
		return nil, err
	}
	err = h.store.DeleteBackupVersion(r.Context(), auth.DeviceFrom(r.Context()).UserID, v)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoBackupVersion()
	}
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// sessionJSON is one backed-up session on the wire.
type sessionJSON struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

func (s sessionJSON) toStorage(roomID, sessionID string) (storage.BackupSession, error) {
	if s.FirstMessageIndex == nil || s.ForwardedCount == nil || s.IsVerified == nil || !isObject(s.SessionData) {
		return storage.BackupSession{}, httputil.MissingParam(
			"session %s of %s needs first_message_index, forwarded_count, is_verified and session_data (an object)", sessionID, roomID)
	}
	if *s.FirstMessageIndex < 0 || *s.ForwardedCount < 0 {
		return storage.BackupSession{}, httputil.InvalidParam("session %s of %s: negative index or count", sessionID, roomID)
	}
	data, err := canonicalJSON(s.SessionData)
	if err != nil {
		return storage.BackupSession{}, httputil.BadJSON("session %s of %s: %v", sessionID, roomID, err)
	}
	return storage.BackupSession{RoomID: roomID, SessionID: sessionID, FirstMessageIndex: *s.FirstMessageIndex,
		ForwardedCount: *s.ForwardedCount, IsVerified: *s.IsVerified, SessionData: data}, nil
}

func fromStorage(b storage.BackupSession) sessionJSON {
	return sessionJSON{FirstMessageIndex: &b.FirstMessageIndex, ForwardedCount: &b.ForwardedCount,
		IsVerified: &b.IsVerified, SessionData: json.RawMessage(b.SessionData)}
}

type roomSessionsJSON struct {
	Sessions map[string]sessionJSON `json:"sessions"`
}

// keysVersion reads the required ?version= of the /room_keys/keys endpoints.
func keysVersion(r *http.Request) (int64, error) {
	s := r.URL.Query().Get("version")
	if s == "" {
		return 0, httputil.MissingParam("the version parameter is required")
	}
	return parseVersion(s)
}

// PutBackupKeys is PUT /room_keys/keys[/{roomID}[/{sessionID}]]: stores
// sessions in the current backup version, each replacing the stored copy
// only when it is better (the spec's rule, storage.BackupSession.Better).
// It answers the version's etag and count.
func (h *Handlers) PutBackupKeys(r *http.Request) (any, error) {
	v, err := keysVersion(r)
	if err != nil {
		return nil, err
	}
	roomID, sessionID := httputil.PathParam(r, "roomID"), httputil.PathParam(r, "sessionID")
	var sessions []storage.BackupSession
	switch {
	case sessionID != "":
		var s sessionJSON
		if err := h.decode(r, &s); err != nil {
			return nil, err
		}
		bs, err := s.toStorage(roomID, sessionID)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, bs)
	case roomID != "":
		var room roomSessionsJSON
		if err := h.decode(r, &room); err != nil {
			return nil, err
		}
		if sessions, err = appendSessions(nil, roomID, room); err != nil {
			return nil, err
		}
	default:
		var all struct {
			Rooms map[string]roomSessionsJSON `json:"rooms"`
		}
		if err := h.decode(r, &all); err != nil {
			return nil, err
		}
		for rid, room := range all.Rooms {
			if sessions, err = appendSessions(sessions, rid, room); err != nil {
				return nil, err
			}
		}
	}
	userID := auth.DeviceFrom(r.Context()).UserID
	etag, count, err := h.store.PutBackupSessions(r.Context(), userID, v, sessions)
	switch {
	case errors.Is(err, storage.ErrWrongBackupVersion):
		cur, err := h.store.BackupVersionOf(r.Context(), userID, 0)
		if err != nil {
			return nil, err
		}
		return nil, httputil.Errorf(httputil.CodeWrongKeysVersion, "version %d is not the current backup version", v).
			With("current_version", strconv.FormatInt(cur.Version, 10))
	case errors.Is(err, storage.ErrNotFound):
		return nil, errNoBackupVersion()
	case err != nil:
		return nil, err
	}
	return map[string]any{"etag": strconv.FormatInt(etag, 10), "count": count}, nil
}

func appendSessions(out []storage.BackupSession, roomID string, room roomSessionsJSON) ([]storage.BackupSession, error) {
	for sid, s := range room.Sessions {
		bs, err := s.toStorage(roomID, sid)
		if err != nil {
			return nil, err
		}
		out = append(out, bs)
	}
	return out, nil
}

// BackupKeys is GET /room_keys/keys[/{roomID}[/{sessionID}]] of any
// existing version.
func (h *Handlers) BackupKeys(r *http.Request) (any, error) {
	v, err := keysVersion(r)
	if err != nil {
		return nil, err
	}
	roomID, sessionID := httputil.PathParam(r, "roomID"), httputil.PathParam(r, "sessionID")
	got, err := h.store.BackupSessions(r.Context(), auth.DeviceFrom(r.Context()).UserID, v, roomID, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoBackupVersion()
	}
	if err != nil {
		return nil, err
	}
	switch {
	case sessionID != "":
		if len(got) == 0 {
			return nil, httputil.NotFound("no such session in the backup")
		}
		return fromStorage(got[0]), nil
	case roomID != "":
		room := roomSessionsJSON{Sessions: map[string]sessionJSON{}}
		for _, b := range got {
			room.Sessions[b.SessionID] = fromStorage(b)
		}
		return room, nil
	}
	rooms := map[string]roomSessionsJSON{}
	for _, b := range got {
		room, ok := rooms[b.RoomID]
		if !ok {
			room = roomSessionsJSON{Sessions: map[string]sessionJSON{}}
			rooms[b.RoomID] = room
		}
		room.Sessions[b.SessionID] = fromStorage(b)
	}
	return map[string]any{"rooms": rooms}, nil
}

// DeleteBackupKeys is DELETE /room_keys/keys[/{roomID}[/{sessionID}]]; it
// answers the version's etag and count.
func (h *Handlers) DeleteBackupKeys(r *http.Request) (any, error) {
	v, err := keysVersion(r)
	if err != nil {
		return nil, err
	}
	roomID, sessionID := httputil.PathParam(r, "roomID"), httputil.PathParam(r, "sessionID")
	etag, count, err := h.store.DeleteBackupSessions(r.Context(), auth.DeviceFrom(r.Context()).UserID, v, roomID, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoBackupVersion()
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"etag": strconv.FormatInt(etag, 10), "count": count}, nil
}
