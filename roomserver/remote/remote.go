// Package remote is the NATS transport of roomserver/api: Serve answers on
// the bus for the roomserver, one subject per method, and Client asks it
// from another process, so that a component split out of the
// roomserver's process (the client API, for one) holds the same
// api.Writer, api.Reader, api.Relations and api.Directory as one that runs
// beside it.
//
// It sits between roomserver/api, whose interfaces it implements, and
// internal/bus; cmd/ chooses between the roomserver itself and this
// client. Requests and replies are small JSON structs (wire.go); the
// roomserver's sentinel errors and *api.NotAllowedError keep their
// identity across the bus (errors.Is, errors.As) and their message.
package remote

import (
	"time"

	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Roomserver is what Serve serves: every interface of roomserver/api.
type Roomserver interface {
	api.Writer
	api.Reader
	api.Relations
	api.Directory
}

// The bus subjects (relative to the bus prefix) on which the roomserver
// answers, one per method: roomserver.input.* change rooms,
// roomserver.query.* read them, roomserver.directory.* hold aliases and
// the public room list. (The output stream's roomserver.output.<partition>
// has a token fewer, so the two never meet.)
const (
	SubjectCreateRoom  = "roomserver.input.create_room"
	SubjectSend        = "roomserver.input.send"
	SubjectInputEvents = "roomserver.input.events"

	SubjectRoomVersion        = "roomserver.query.room_version"
	SubjectCurrentState       = "roomserver.query.current_state"
	SubjectCurrentStateEvent  = "roomserver.query.current_state_event"
	SubjectStateBefore        = "roomserver.query.state_before"
	SubjectStateEventsBefore  = "roomserver.query.state_events_before"
	SubjectEvent              = "roomserver.query.event"
	SubjectMembership         = "roomserver.query.membership"
	SubjectRoomsOf            = "roomserver.query.rooms_of"
	SubjectTimeline           = "roomserver.query.timeline"
	SubjectLatestPos          = "roomserver.query.latest_pos"
	SubjectStrippedState      = "roomserver.query.stripped_state"
	SubjectEventNearTimestamp = "roomserver.query.event_near_timestamp"
	SubjectRelatedEvents      = "roomserver.query.related_events"
	SubjectAggregations       = "roomserver.query.aggregations"
	SubjectThreads            = "roomserver.query.threads"

	SubjectSetAlias      = "roomserver.directory.set_alias"
	SubjectResolveAlias  = "roomserver.directory.resolve_alias"
	SubjectDeleteAlias   = "roomserver.directory.delete_alias"
	SubjectAliasesOf     = "roomserver.directory.aliases_of"
	SubjectSetVisibility = "roomserver.directory.set_visibility"
	SubjectVisibility    = "roomserver.directory.visibility"
	SubjectPublicRooms   = "roomserver.directory.public_rooms"
)

// WriteTimeout bounds a call that changes something (CreateRoom, Send,
// InputEvents, and the directory's SetAlias, DeleteAlias, SetVisibility)
// when the caller's ctx has no deadline: a write waits for its room's
// sequencer and for the database's commit, which take longer than a read
// under load. Reads get bus.DefaultCallTimeout. A deadline on ctx always
// wins, shorter or longer.
const WriteTimeout = 30 * time.Second

// The codes of the api's error types on the bus.
const (
	codeNotAllowed    = "not_allowed"
	codePolicyRefused = "policy_refused"
)

// sentinelCodes maps the sentinel errors of roomserver/api to their bus
// codes, the same table on both sides. A test checks that it names every
// Err* of the package.
func sentinelCodes() bus.ErrorCodes {
	return bus.ErrorCodes{
		"room_not_found":      api.ErrRoomNotFound,
		"not_found":           api.ErrNotFound,
		"too_large":           api.ErrTooLarge,
		"unsupported_version": api.ErrUnsupportedVersion,
		"invalid_event":       api.ErrInvalidEvent,
		"alias_exists":        api.ErrAliasExists,
		"bad_page_token":      api.ErrBadPageToken,
		"policy_unavailable":  api.ErrPolicyServerUnavailable,
	}
}

// rpcOptions are the error options of every subject: the sentinels,
// *api.NotAllowedError with its Reason and *api.PolicyRefusedError with
// the policy server's errcode and error.
func rpcOptions() []bus.RPCOption {
	return []bus.RPCOption{
		bus.WithErrors(sentinelCodes()),
		bus.WithErrorType[api.NotAllowedError](codeNotAllowed),
		bus.WithErrorType[api.PolicyRefusedError](codePolicyRefused),
	}
}
