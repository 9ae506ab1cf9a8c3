package remote

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// inputBatchBytes caps the events of one InputEvents request, so that a
// request stays under NATS's max_payload (1 MB by default) with room for
// the envelope: more events go in several requests, in order.
const inputBatchBytes = 512 << 10

// Client is the roomserver's api (Writer, Reader, Relations, Directory)
// asked over the bus of whichever process runs Serve. Its errors are the
// roomserver's own, as in one process: errors.Is matches the sentinels of
// roomserver/api, errors.As finds *api.NotAllowedError with its Reason,
// and the message is the roomserver's. Besides those, bus.ErrNoResponders
// means no roomserver process is running, and an error wrapping
// context.DeadlineExceeded that it did not answer in time (ctx's deadline,
// else WriteTimeout for writes and bus.DefaultCallTimeout for reads).
// It is safe for concurrent use.
type Client struct {
	b    *bus.Bus
	opts []bus.RPCOption
	// declared holds the codes of the roomserver's own errors.
	declared map[string]bool
}

// NewClient returns a Client that asks over b.
func NewClient(b *bus.Bus) *Client {
	declared := map[string]bool{codeNotAllowed: true, codePolicyRefused: true}
	for code := range sentinelCodes() {
		declared[code] = true
	}
	return &Client{b: b, opts: rpcOptions(), declared: declared}
}

// call sends req on subject and returns the reply. timeout, when not 0,
// bounds a ctx without deadline instead of bus.DefaultCallTimeout.
func call[Req, Resp any](ctx context.Context, c *Client, subject string, req Req, timeout time.Duration) (Resp, error) {
	if _, ok := ctx.Deadline(); !ok && timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	resp, err := bus.Call[Req, Resp](ctx, c.b, subject, req, c.opts...)
	return resp, c.local(err)
}

// local returns an error of the roomserver's own (a sentinel or a
// refusal) as the serving process returned it, without the "call
// <subject>: " that the bus puts in front: in one process the message has
// none, and some reach clients (M_BAD_JSON's). Other errors (no
// responders, deadlines, the undeclared ones) keep the subject, which
// says where they happened.
func (c *Client) local(err error) error {
	var re *bus.RemoteError
	if errors.As(err, &re) && c.declared[re.Code] {
		return re
	}
	return err
}

// CreateRoom implements api.Writer.
func (c *Client) CreateRoom(ctx context.Context, req api.CreateRoomRequest) (string, []string, error) {
	w := createRoomRequest{RoomVersion: req.RoomVersion, Creator: req.Creator, CreateContent: req.CreateContent}
	if req.Events != nil {
		w.Events = make([]protoEvent, len(req.Events))
		for i, e := range req.Events {
			w.Events[i] = toWireProto(e)
		}
	}
	resp, err := call[createRoomRequest, createRoomResponse](ctx, c, SubjectCreateRoom, w, WriteTimeout)
	return resp.RoomID, resp.EventIDs, err
}

// Send implements api.Writer.
func (c *Client) Send(ctx context.Context, roomID string, ev api.ProtoEvent) (api.Event, error) {
	return call[sendRequest, api.Event](ctx, c, SubjectSend, sendRequest{RoomID: roomID, Event: toWireProto(ev)}, WriteTimeout)
}

// InputEvents implements api.Writer. Events beyond inputBatchBytes go in
// further requests, each after the previous one's answer: the roomserver
// sees them in order, as in one call, but other events of the room may
// come between two requests. As in one process, the results of the events
// accepted before an error come back with it.
func (c *Client) InputEvents(ctx context.Context, roomID string, events []json.RawMessage) ([]api.InputResult, error) {
	var results []api.InputResult
	for {
		n := batchLen(events)
		req := inputEventsRequest{RoomID: roomID, Events: events[:n]}
		resp, err := call[inputEventsRequest, inputEventsResponse](ctx, c, SubjectInputEvents, req, WriteTimeout)
		if results == nil {
			results = resp.Results
		} else {
			results = append(results, resp.Results...)
		}
		if err != nil || n == len(events) {
			return results, err
		}
		events = events[n:]
	}
}

// batchLen is how many of events, at least one if there are any, fit in
// inputBatchBytes.
func batchLen(events []json.RawMessage) int {
	n, size := 0, 0
	for n < len(events) && (n == 0 || size+len(events[n]) <= inputBatchBytes) {
		size += len(events[n])
		n++
	}
	return n
}

// RoomVersion implements api.Reader.
func (c *Client) RoomVersion(ctx context.Context, roomID string) (string, error) {
	resp, err := call[roomRequest, roomVersionResponse](ctx, c, SubjectRoomVersion, roomRequest{RoomID: roomID}, 0)
	return resp.RoomVersion, err
}

// CurrentState implements api.Reader.
func (c *Client) CurrentState(ctx context.Context, roomID string) ([]api.Event, error) {
	resp, err := call[roomRequest, eventsResponse](ctx, c, SubjectCurrentState, roomRequest{RoomID: roomID}, 0)
	return resp.Events, err
}

// CurrentStateEvent implements api.Reader.
func (c *Client) CurrentStateEvent(ctx context.Context, roomID string, key api.StateKey) (api.Event, error) {
	return call[currentStateEventRequest, api.Event](ctx, c, SubjectCurrentStateEvent, currentStateEventRequest{RoomID: roomID, Key: key}, 0)
}

// StateBefore implements api.Reader.
func (c *Client) StateBefore(ctx context.Context, eventID string) ([]api.Event, error) {
	resp, err := call[eventRequest, eventsResponse](ctx, c, SubjectStateBefore, eventRequest{EventID: eventID}, 0)
	return resp.Events, err
}

// StateEventsBefore implements api.Reader.
func (c *Client) StateEventsBefore(ctx context.Context, eventID string, keys []api.StateKey) ([]api.Event, error) {
	resp, err := call[stateEventsBeforeRequest, eventsResponse](ctx, c, SubjectStateEventsBefore, stateEventsBeforeRequest{EventID: eventID, Keys: keys}, 0)
	return resp.Events, err
}

// Event implements api.Reader.
func (c *Client) Event(ctx context.Context, eventID string) (api.Event, error) {
	return call[eventRequest, api.Event](ctx, c, SubjectEvent, eventRequest{EventID: eventID}, 0)
}

// Membership implements api.Reader.
func (c *Client) Membership(ctx context.Context, roomID, userID string) (string, int64, error) {
	resp, err := call[membershipRequest, membershipResponse](ctx, c, SubjectMembership, membershipRequest{RoomID: roomID, UserID: userID}, 0)
	return resp.Membership, resp.Pos, err
}

// RoomsOf implements api.Reader.
func (c *Client) RoomsOf(ctx context.Context, userID, membership string) ([]string, error) {
	resp, err := call[roomsOfRequest, roomIDsResponse](ctx, c, SubjectRoomsOf, roomsOfRequest{UserID: userID, Membership: membership}, 0)
	return resp.RoomIDs, err
}

// Timeline implements api.Reader.
func (c *Client) Timeline(ctx context.Context, roomID string, from int64, dir api.Direction, limit int) ([]api.Event, error) {
	resp, err := call[timelineRequest, eventsResponse](ctx, c, SubjectTimeline, timelineRequest{RoomID: roomID, From: from, Dir: dir, Limit: limit}, 0)
	return resp.Events, err
}

// LatestPos implements api.Reader.
func (c *Client) LatestPos(ctx context.Context) (int64, error) {
	resp, err := call[none, posResponse](ctx, c, SubjectLatestPos, none{}, 0)
	return resp.Pos, err
}

// StrippedState implements api.Reader.
func (c *Client) StrippedState(ctx context.Context, roomID string) ([]json.RawMessage, error) {
	resp, err := call[roomRequest, strippedStateResponse](ctx, c, SubjectStrippedState, roomRequest{RoomID: roomID}, 0)
	return resp.Events, err
}

// EventNearTimestamp implements api.Reader.
func (c *Client) EventNearTimestamp(ctx context.Context, roomID string, ts int64, dir api.Direction) (api.Event, error) {
	return call[eventNearTimestampRequest, api.Event](ctx, c, SubjectEventNearTimestamp, eventNearTimestampRequest{RoomID: roomID, TS: ts, Dir: dir}, 0)
}

// RelatedEvents implements api.Relations.
func (c *Client) RelatedEvents(ctx context.Context, req api.RelationsRequest) ([]api.Event, error) {
	w := relatedEventsRequest{
		RoomID: req.RoomID, EventID: req.EventID, RelType: req.RelType, EventType: req.EventType,
		From: req.From, Dir: req.Dir, Limit: req.Limit,
	}
	resp, err := call[relatedEventsRequest, eventsResponse](ctx, c, SubjectRelatedEvents, w, 0)
	return resp.Events, err
}

// Aggregations implements api.Relations.
func (c *Client) Aggregations(ctx context.Context, userID string, eventIDs []string) (map[string]api.Aggregation, error) {
	resp, err := call[aggregationsRequest, aggregationsResponse](ctx, c, SubjectAggregations, aggregationsRequest{UserID: userID, EventIDs: eventIDs}, 0)
	if resp.Aggregations == nil {
		return nil, err
	}
	out := make(map[string]api.Aggregation, len(resp.Aggregations))
	for id, a := range resp.Aggregations {
		out[id] = a.api()
	}
	return out, err
}

// Threads implements api.Relations.
func (c *Client) Threads(ctx context.Context, roomID, participatedBy string, from int64, limit int) ([]api.Event, []int64, error) {
	req := threadsRequest{RoomID: roomID, ParticipatedBy: participatedBy, From: from, Limit: limit}
	resp, err := call[threadsRequest, threadsResponse](ctx, c, SubjectThreads, req, 0)
	return resp.Roots, resp.Positions, err
}

// SetAlias implements api.Directory.
func (c *Client) SetAlias(ctx context.Context, alias, roomID, creator string) error {
	_, err := call[setAliasRequest, none](ctx, c, SubjectSetAlias, setAliasRequest{Alias: alias, RoomID: roomID, Creator: creator}, WriteTimeout)
	return err
}

// ResolveAlias implements api.Directory.
func (c *Client) ResolveAlias(ctx context.Context, alias string) (api.RoomAlias, error) {
	return call[aliasRequest, api.RoomAlias](ctx, c, SubjectResolveAlias, aliasRequest{Alias: alias}, 0)
}

// DeleteAlias implements api.Directory.
func (c *Client) DeleteAlias(ctx context.Context, a api.RoomAlias) error {
	_, err := call[api.RoomAlias, none](ctx, c, SubjectDeleteAlias, a, WriteTimeout)
	return err
}

// AliasesOf implements api.Directory.
func (c *Client) AliasesOf(ctx context.Context, roomID string) ([]string, error) {
	resp, err := call[roomRequest, aliasesResponse](ctx, c, SubjectAliasesOf, roomRequest{RoomID: roomID}, 0)
	return resp.Aliases, err
}

// SetVisibility implements api.Directory.
func (c *Client) SetVisibility(ctx context.Context, roomID string, public bool) error {
	_, err := call[setVisibilityRequest, none](ctx, c, SubjectSetVisibility, setVisibilityRequest{RoomID: roomID, Public: public}, WriteTimeout)
	return err
}

// Visibility implements api.Directory.
func (c *Client) Visibility(ctx context.Context, roomID string) (bool, error) {
	resp, err := call[roomRequest, visibilityResponse](ctx, c, SubjectVisibility, roomRequest{RoomID: roomID}, 0)
	return resp.Public, err
}

// PublicRooms implements api.Directory.
func (c *Client) PublicRooms(ctx context.Context, q api.PublicRoomsQuery) (api.PublicRoomsPage, error) {
	return call[api.PublicRoomsQuery, api.PublicRoomsPage](ctx, c, SubjectPublicRooms, q, 0)
}

var (
	_ api.Writer    = (*Client)(nil)
	_ api.Reader    = (*Client)(nil)
	_ api.Relations = (*Client)(nil)
	_ api.Directory = (*Client)(nil)
	_ Roomserver    = (*Client)(nil)
)
