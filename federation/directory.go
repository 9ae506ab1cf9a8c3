package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib/spec"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// QueryDirectory answers GET /_matrix/federation/v1/query/directory?room_alias=:
// the room one of this server's aliases points to, and the servers in it
// (this one first).
func (c *Component) QueryDirectory(r *http.Request) (any, error) {
	alias := r.URL.Query().Get("room_alias")
	if alias == "" {
		return nil, httputil.MissingParam("room_alias is required")
	}
	if _, server, _ := strings.Cut(alias, ":"); server != string(c.serverName) {
		return nil, httputil.NotFound("not an alias of this server")
	}
	a, err := c.rooms.ResolveAlias(r.Context(), alias)
	if errors.Is(err, rsapi.ErrNotFound) {
		return nil, httputil.NotFound("unknown alias")
	}
	if err != nil {
		return nil, err
	}
	servers, err := c.rooms.JoinedServers(r.Context(), a.RoomID)
	if err != nil && !errors.Is(err, rsapi.ErrRoomNotFound) {
		return nil, err
	}
	servers = slices.DeleteFunc(servers, func(s string) bool { return s == string(c.serverName) })
	return map[string]any{"room_id": a.RoomID, "servers": append([]string{string(c.serverName)}, servers...)}, nil
}

// QueryRoomAlias implements fedapi.RemoteDirectory: GET
// /_matrix/federation/v1/query/directory on the alias's server.
func (c *Component) QueryRoomAlias(ctx context.Context, alias string) (fedapi.RoomAlias, error) {
	local, server, _ := strings.Cut(alias, ":")
	if !strings.HasPrefix(local, "#") || server == "" || server == string(c.serverName) || !c.cfg.ServerAllowed(server) {
		return fedapi.RoomAlias{}, fmt.Errorf("alias %s: %w", alias, fedapi.ErrNoServer)
	}
	var res fedapi.RoomAlias
	err := c.request(ctx, "GET", server, "/_matrix/federation/v1/query/directory?"+url.Values{"room_alias": {alias}}.Encode(), nil, &res)
	var herr gomatrix.HTTPError
	switch {
	case errors.As(err, &herr) && herr.Code == http.StatusNotFound:
		return fedapi.RoomAlias{}, fmt.Errorf("alias %s: %w", alias, fedapi.ErrNotFound)
	case err != nil:
		return fedapi.RoomAlias{}, fmt.Errorf("query alias %s: %w", alias, refusal(spec.ServerName(server), err))
	case !strings.HasPrefix(res.RoomID, "!"):
		return fedapi.RoomAlias{}, fmt.Errorf("query alias %s on %s: the answer names no room", alias, server)
	}
	// The alias's server knows the room: it is asked first.
	res.Servers = slices.DeleteFunc(res.Servers, func(s string) bool { return s == "" || s == server })
	res.Servers = append([]string{server}, res.Servers...)
	return res, nil
}

// QueryPublicRooms implements fedapi.RemoteDirectory: GET
// /_matrix/federation/v1/publicRooms on server, or POST with a search
// term or room types. Entries that are not objects naming a room are
// left out.
func (c *Component) QueryPublicRooms(ctx context.Context, server string, q fedapi.PublicRoomsQuery) (fedapi.PublicRoomsPage, error) {
	if server == "" || server == string(c.serverName) || !c.cfg.ServerAllowed(server) {
		return fedapi.PublicRoomsPage{}, fmt.Errorf("public rooms of %s: %w", server, fedapi.ErrNoServer)
	}
	const path = "/_matrix/federation/v1/publicRooms"
	var page fedapi.PublicRoomsPage
	var err error
	if q.SearchTerm == "" && q.RoomTypes == nil {
		v := url.Values{}
		if q.Limit > 0 {
			v.Set("limit", strconv.Itoa(q.Limit))
		}
		if q.Since != "" {
			v.Set("since", q.Since)
		}
		err = c.request(ctx, "GET", server, path+"?"+v.Encode(), nil, &page)
	} else {
		filter := map[string]any{}
		if q.SearchTerm != "" {
			filter["generic_search_term"] = q.SearchTerm
		}
		if q.RoomTypes != nil {
			types := make([]*string, len(q.RoomTypes))
			for i := range q.RoomTypes {
				if q.RoomTypes[i] != "" {
					types[i] = &q.RoomTypes[i]
				}
			}
			filter["room_types"] = types
		}
		body := map[string]any{"filter": filter}
		if q.Limit > 0 {
			body["limit"] = q.Limit
		}
		if q.Since != "" {
			body["since"] = q.Since
		}
		err = c.request(ctx, "POST", server, path, body, &page)
	}
	var herr gomatrix.HTTPError
	if errors.As(err, &herr) && herr.Code == http.StatusNotFound {
		return fedapi.PublicRoomsPage{}, fmt.Errorf("public rooms of %s: %w", server, fedapi.ErrNotFound)
	}
	if err != nil {
		return fedapi.PublicRoomsPage{}, fmt.Errorf("public rooms of %s: %w", server, refusal(spec.ServerName(server), err))
	}
	page.Chunk = slices.DeleteFunc(page.Chunk, func(e json.RawMessage) bool {
		var entry struct {
			RoomID string `json:"room_id"`
		}
		return json.Unmarshal(e, &entry) != nil || !strings.HasPrefix(entry.RoomID, "!")
	})
	if page.Chunk == nil {
		page.Chunk = []json.RawMessage{}
	}
	return page, nil
}

// publicRoomsResponse is the answer of /publicRooms.
type publicRoomsResponse struct {
	Chunk     []rsapi.PublicRoom `json:"chunk"`
	NextBatch string             `json:"next_batch,omitempty"`
	PrevBatch string             `json:"prev_batch,omitempty"`
	Total     int                `json:"total_room_count_estimate"`
}

// maxPublicRooms bounds a page of the public room list.
const maxPublicRooms = 500

// PublicRooms answers GET and POST /_matrix/federation/v1/publicRooms:
// this server's public room list, a page at a time (POST: with a search
// term and room types).
func (c *Component) PublicRooms(r *http.Request) (any, error) {
	q := rsapi.PublicRoomsQuery{Limit: maxPublicRooms}
	if r.Method == http.MethodPost {
		var body struct {
			Limit  int    `json:"limit"`
			Since  string `json:"since"`
			Filter struct {
				GenericSearchTerm string    `json:"generic_search_term"`
				RoomTypes         []*string `json:"room_types"`
			} `json:"filter"`
		}
		if err := decodeContent(r, &body); err != nil {
			return nil, err
		}
		if body.Limit > 0 {
			q.Limit = min(body.Limit, maxPublicRooms)
		}
		q.Since, q.SearchTerm = body.Since, body.Filter.GenericSearchTerm
		for _, t := range body.Filter.RoomTypes {
			if t == nil {
				q.RoomTypes = append(q.RoomTypes, "")
			} else {
				q.RoomTypes = append(q.RoomTypes, *t)
			}
		}
	} else {
		if l := r.URL.Query().Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				return nil, httputil.InvalidParam("limit must be a number")
			}
			if n > 0 {
				q.Limit = min(n, maxPublicRooms)
			}
		}
		q.Since = r.URL.Query().Get("since")
	}
	page, err := c.rooms.PublicRooms(r.Context(), q)
	if err != nil {
		return nil, err
	}
	if page.Chunk == nil {
		page.Chunk = []rsapi.PublicRoom{}
	}
	return publicRoomsResponse{Chunk: page.Chunk, NextBatch: page.NextBatch, PrevBatch: page.PrevBatch, Total: page.Total}, nil
}

// TimestampToEvent answers GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=&dir=.
func (c *Component) TimestampToEvent(r *http.Request) (any, error) {
	ctx, roomID := r.Context(), httputil.PathParam(r, "roomID")
	ts, err := strconv.ParseInt(r.URL.Query().Get("ts"), 10, 64)
	if err != nil {
		return nil, httputil.InvalidParam("ts must be a timestamp in milliseconds")
	}
	dir := rsapi.Forward
	switch r.URL.Query().Get("dir") {
	case "f":
	case "b":
		dir = rsapi.Backward
	default:
		return nil, httputil.InvalidParam("dir must be f or b")
	}
	if err := c.checkInRoom(ctx, roomID, originOf(r)); err != nil {
		return nil, err
	}
	ev, err := c.rooms.EventNearTimestamp(ctx, roomID, ts, dir)
	if errors.Is(err, rsapi.ErrNotFound) {
		return nil, httputil.NotFound("no event found")
	}
	if err != nil {
		return nil, err
	}
	pdu, err := ev.PDU()
	if err != nil {
		return nil, err
	}
	return map[string]any{"event_id": ev.EventID, "origin_server_ts": int64(pdu.OriginServerTS())}, nil
}
