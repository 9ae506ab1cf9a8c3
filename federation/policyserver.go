package federation

// Policy servers (spec v1.18, "Policy Servers"; not policy.go, which is
// the allow-list). This server is not a policy server: POST
// /_matrix/policy/v1/sign is not routed here (404 M_UNRECOGNIZED). It
// asks the policy server of a room that uses one:
//
//   - for the events our users send: the roomserver calls PolicySign
//     (rsapi.PolicySigner) before it stores the event, and fails the
//     client's request when the policy server refuses;
//   - for the events other servers send us (/send, /get_missing_events)
//     that lack its valid signature: policySigned asks once for a new
//     one (the key may have rotated, the sender may not have asked)
//     before the roomserver's input, which soft-fails the event if it
//     still has none.
//
// A policy server that cannot be asked (network error, timeout, 5xx)
// counts as a refusal, as in Synapse: the local request fails (502),
// the received event is soft-failed. Failing open would let anyone who
// can make the policy server unreachable bypass it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/roompolicy"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// policySignPath is the policy server's signing endpoint.
const policySignPath = "/_matrix/policy/v1/sign"

// policySignTimeout bounds one request to a policy server: a client's
// send waits for it, with its room's sequencer.
const policySignTimeout = 10 * time.Second

// fieldPolicyServer is the log field of a room's policy server.
const fieldPolicyServer = "policy_server"

// PolicySign implements rsapi.PolicySigner: POST pdu to via's
// /_matrix/policy/v1/sign, signed with our key as any federation
// request (and so only to a server the allow-list lets us contact), and
// return its signature, unchecked. A 4xx answer is a
// *rsapi.PolicyRefusedError with the policy server's errcode and error
// (M_FORBIDDEN when it gave none), and so is a 200 answer without a
// signature; anything else that is not an answer is
// rsapi.ErrPolicyServerUnavailable.
func (c *Component) PolicySign(ctx context.Context, via string, pdu json.RawMessage) (string, error) {
	fr := fclient.NewFederationRequest("POST", c.serverName, spec.ServerName(via), policySignPath)
	if err := fr.SetContent(pdu); err != nil {
		return "", fmt.Errorf("policy sign request: %w", err)
	}
	if err := fr.Sign(c.serverName, gomatrixserverlib.KeyID(c.keys.current.ID), c.keys.current.Private); err != nil {
		return "", fmt.Errorf("sign policy sign request: %w", err)
	}
	hreq, err := fr.HTTPRequest()
	if err != nil {
		return "", fmt.Errorf("policy sign request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, policySignTimeout)
	defer cancel()
	var res map[string]map[string]string
	err = c.client.DoRequestAndParseResponse(ctx, hreq, &res)
	var httpErr gomatrix.HTTPError
	switch {
	case errors.As(err, &httpErr) && httpErr.Code >= 400 && httpErr.Code < 500:
		var body struct {
			ErrCode string `json:"errcode"`
			Error   string `json:"error"`
		}
		_ = json.Unmarshal(httpErr.Contents, &body)
		if body.ErrCode == "" {
			body.ErrCode = string(httputil.CodeForbidden)
		}
		if body.Error == "" {
			body.Error = "the room's policy server refused the event"
		}
		return "", &rsapi.PolicyRefusedError{ErrCode: body.ErrCode, Message: body.Error}
	case errors.As(err, &httpErr):
		return "", fmt.Errorf("%w: %s answered %d", rsapi.ErrPolicyServerUnavailable, via, httpErr.Code)
	case err != nil:
		return "", fmt.Errorf("%w: %s: %v", rsapi.ErrPolicyServerUnavailable, via, err)
	}
	sig := res[via][string(roompolicy.KeyID)]
	if sig == "" {
		return "", &rsapi.PolicyRefusedError{ErrCode: string(httputil.CodeForbidden), Message: "the room's policy server did not sign the event"}
	}
	return sig, nil
}

// roomPolicyServer returns the policy server the room uses, judged on
// the roomserver's current state; ok is false when it uses none (no
// valid m.room.policy, its via without joined members, or this server).
func (c *Component) roomPolicyServer(ctx context.Context, roomID string) (s roompolicy.Server, ok bool, err error) {
	ev, err := c.rooms.CurrentStateEvent(ctx, roomID, rsapi.StateKey{Type: roompolicy.EventType})
	if errors.Is(err, rsapi.ErrNotFound) {
		return roompolicy.Server{}, false, nil
	}
	if err != nil {
		return roompolicy.Server{}, false, fmt.Errorf("read the policy event of %s: %w", roomID, err)
	}
	pdu, err := ev.PDU()
	if err != nil {
		return roompolicy.Server{}, false, err
	}
	if s, ok = roompolicy.Parse(pdu.Content()); !ok || s.Via == c.serverName {
		return roompolicy.Server{}, false, nil
	}
	servers, err := c.rooms.JoinedServers(ctx, roomID)
	if err != nil {
		return roompolicy.Server{}, false, fmt.Errorf("servers in %s: %w", roomID, err)
	}
	for _, srv := range servers {
		if srv == string(s.Via) {
			return s, true, nil
		}
	}
	return roompolicy.Server{}, false, nil
}

// policySigned returns a received PDU ready for the roomserver's input
// as far as the room's policy server goes: as it is when the room uses
// none, when it is exempt or already carries a valid signature; else
// with the signature the policy server gives now, when it gives a valid
// one. Otherwise (a refusal, a policy server out of reach) it is
// returned as it is, and the roomserver soft-fails it. Only a failure to
// read the room is an error.
//
// down holds the policy servers found out of reach while handling one
// request: they are not asked again for its other PDUs, so that a dead
// policy server costs a transaction one timeout, not fifty.
func (c *Component) policySigned(ctx context.Context, pdu gomatrixserverlib.PDU, down map[spec.ServerName]bool) (gomatrixserverlib.PDU, error) {
	if roompolicy.Exempt(pdu) {
		return pdu, nil
	}
	ps, ok, err := c.roomPolicyServer(ctx, pdu.RoomID().String())
	if err != nil || !ok {
		return pdu, err
	}
	if roompolicy.Verify(pdu, ps) == nil {
		return pdu, nil
	}
	log := c.log.WithFields(map[string]any{fieldRoomID: pdu.RoomID().String(), fieldEventID: pdu.EventID(), fieldPolicyServer: ps.Via})
	if down[ps.Via] {
		log.Info("no policy server signature for a received event: the policy server is out of reach")
		return pdu, nil
	}
	sig, err := c.PolicySign(ctx, string(ps.Via), pdu.JSON())
	if err != nil {
		if errors.Is(err, rsapi.ErrPolicyServerUnavailable) {
			down[ps.Via] = true
		}
		log.WithError(err).Info("no policy server signature for a received event")
		return pdu, nil
	}
	signed, err := roompolicy.WithSignature(pdu, ps.Via, sig)
	if err == nil {
		err = roompolicy.Verify(signed, ps)
	}
	if err != nil {
		log.WithError(err).Warn("the policy server's signature of a received event does not verify")
		return pdu, nil
	}
	return signed, nil
}

var _ rsapi.PolicySigner = (*Component)(nil)
