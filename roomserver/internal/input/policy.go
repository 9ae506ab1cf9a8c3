package input

// Policy servers (spec v1.18). A room uses one when its current state
// holds a valid m.room.policy event (state key "") whose via server has a
// joined member; this server is never one, so a room naming it uses none
// here. Then every event but that m.room.policy one needs the policy
// server's signature:
//
//   - a local event is sent to the policy server (deps.Policy, the
//     federation component: the roomserver makes no network calls of its
//     own) once built and authorised, with the room's lock held, before
//     the transaction; its signature is added to the event, or the send
//     fails with the policy server's refusal and nothing is stored;
//   - an input event (another server's) without a valid signature is
//     soft-failed, judged on current state in the input's transaction,
//     as the auth rules' soft failure is. The federation component asks
//     for a new signature before the input, so that only events the
//     policy server refused (or could not be asked about) fail here.

import (
	"context"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/roompolicy"
	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Prepare readies what the input path looks up at every event: the key
// of the room's policy event, which most rooms do not have, interned
// ahead so that looking it up costs no query.
func (in *Inputter) Prepare(ctx context.Context) error {
	return in.deps.Tuples.Preload(ctx, storage.TypeStateKey{Type: roompolicy.EventType})
}

// policyServer returns the policy server the room of t uses, judged on
// t's current state (and, for its members, t's transaction when it has
// one); ok is false when it uses none.
func (in *Inputter) policyServer(ctx context.Context, t *roomTxn) (s roompolicy.Server, ok bool, err error) {
	k, found, err := t.lookup(roompolicy.EventType, "")
	if err != nil || !found {
		return roompolicy.Server{}, false, err
	}
	nid, found := t.state[k]
	if !found {
		return roompolicy.Server{}, false, nil
	}
	evs, err := in.deps.Events.ByNID(ctx, []int64{nid})
	if err != nil {
		return roompolicy.Server{}, false, fmt.Errorf("load the room's policy event: %w", err)
	}
	if len(evs) != 1 {
		return roompolicy.Server{}, false, nil
	}
	if s, ok = roompolicy.Parse(evs[0].PDU.Content()); !ok || s.Via == in.deps.ServerName {
		return roompolicy.Server{}, false, nil
	}
	joined, err := in.deps.Store.HasJoinedMemberOf(ctx, t.tx, t.nid, string(s.Via))
	if err != nil || !joined {
		return roompolicy.Server{}, false, err
	}
	return s, true, nil
}

// policySign has the room's policy server, if it uses one, sign a local
// event and returns the event with its signature; it fails with the
// policy server's *api.PolicyRefusedError (an answer without a valid
// signature is one too) or api.ErrPolicyServerUnavailable.
func (in *Inputter) policySign(ctx context.Context, t *roomTxn, pdu gomatrixserverlib.PDU) (gomatrixserverlib.PDU, error) {
	if roompolicy.Exempt(pdu) {
		return pdu, nil
	}
	ps, ok, err := in.policyServer(ctx, t)
	if err != nil || !ok {
		return pdu, err
	}
	log := in.deps.Log.WithFields(map[string]any{httputil.FieldRoomID: pdu.RoomID().String(), httputil.FieldEventID: pdu.EventID(), fieldPolicyServer: ps.Via})
	if in.deps.Policy == nil {
		// No federation component in this process to ask: the event goes
		// out unsigned, and the servers that receive it ask instead.
		log.Warn("the room uses a policy server but this process cannot ask it: event sent without its signature")
		return pdu, nil
	}
	sig, err := in.deps.Policy.PolicySign(ctx, string(ps.Via), pdu.JSON())
	if err != nil {
		var refused *api.PolicyRefusedError
		if errors.As(err, &refused) {
			log.WithField("errcode", refused.ErrCode).Info("the policy server refused a local event")
		} else {
			log.WithError(err).Warn("the policy server could not be asked to sign a local event")
		}
		return nil, fmt.Errorf("ask policy server %s: %w", ps.Via, err)
	}
	signed, err := roompolicy.WithSignature(pdu, ps.Via, sig)
	if err != nil {
		return nil, err
	}
	if err := roompolicy.Verify(signed, ps); err != nil {
		log.WithError(err).Warn("the policy server's signature does not verify")
		return nil, &api.PolicyRefusedError{ErrCode: string(httputil.CodeForbidden), Message: "the room's policy server did not sign the event"}
	}
	if len(signed.JSON()) > api.MaxEventBytes {
		return nil, api.ErrTooLarge
	}
	return signed, nil
}

// failsPolicy reports whether an input event lacks the valid signature of
// the policy server the room uses (judged on t's current state).
func (in *Inputter) failsPolicy(ctx context.Context, t *roomTxn, pdu gomatrixserverlib.PDU) (bool, error) {
	if roompolicy.Exempt(pdu) {
		return false, nil
	}
	ps, ok, err := in.policyServer(ctx, t)
	if err != nil || !ok {
		return false, err
	}
	if err := roompolicy.Verify(pdu, ps); err != nil {
		in.deps.Log.WithFields(map[string]any{httputil.FieldRoomID: pdu.RoomID().String(), httputil.FieldEventID: pdu.EventID(), fieldPolicyServer: ps.Via}).
			WithError(err).Info("soft-failing an event without a valid policy server signature")
		return true, nil
	}
	return false, nil
}

// fieldPolicyServer is the log field of a room's policy server.
const fieldPolicyServer = "policy_server"
