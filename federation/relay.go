package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Events of servers off the allow-list reach this server through the
// allowed servers that relay them (a transaction, /get_missing_events, a
// join's state, an invite's or knock's stripped state). They are not
// dropped for their origin: that would tear holes in the room's DAG and
// split its state from everyone else's. Their signatures are checked
// with keys this server never asks their server for: the relaying
// server, which federates with it, is asked as a notary
// (/_matrix/key/v2/query), and its answer must carry both the server's
// own signature and the relay's.

// relayKey is the context key of the server relaying the events being
// checked.
type relayKey struct{}

// withRelay marks ctx as checking events that server relayed.
func withRelay(ctx context.Context, server spec.ServerName) context.Context {
	return context.WithValue(ctx, relayKey{}, server)
}

// relayOf returns the server withRelay named, "" when none.
func relayOf(ctx context.Context) spec.ServerName {
	s, _ := ctx.Value(relayKey{}).(spec.ServerName)
	return s
}

// relayFetcher fetches the keys of servers off the allow-list from the
// server relaying their events (the context's, withRelay), as a notary.
// It implements gomatrixserverlib.KeyFetcher; it fetches nothing outside
// a relay's context nor for an allowed server (directFetcher asks
// those).
type relayFetcher struct{ c *Component }

// FetcherName implements gomatrixserverlib.KeyFetcher.
func (relayFetcher) FetcherName() string { return "relaying server" }

// FetchKeys implements gomatrixserverlib.KeyFetcher.
func (f relayFetcher) FetchKeys(ctx context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	relay := relayOf(ctx)
	if relay == "" || relay == f.c.serverName || !f.c.cfg.ServerAllowed(string(relay)) {
		return out, nil
	}
	ask := map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp{}
	for req, ts := range reqs {
		if req.ServerName != f.c.serverName && req.ServerName != relay && !f.c.cfg.ServerAllowed(string(req.ServerName)) {
			ask[req] = ts
		}
	}
	if len(ask) == 0 {
		return out, nil
	}
	relayKeys, err := f.c.relayKeys(ctx, relay)
	if err != nil {
		f.c.log.WithError(err).WithField(fieldServer, relay).Warn("keys of the relaying server")
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
	defer cancel()
	notary := &gomatrixserverlib.PerspectiveKeyFetcher{PerspectiveServerName: relay, PerspectiveServerKeys: relayKeys, Client: f.c.client}
	res, err := notary.FetchKeys(ctx, ask)
	if err != nil {
		f.c.log.WithError(err).WithField(fieldServer, relay).Warn("fetch keys through the relaying server")
		return out, nil
	}
	for req, r := range res {
		if _, asked := ask[req]; asked {
			out[req] = r
		}
	}
	return out, nil
}

// relayKeys returns the verify keys of an allowed server: from its key
// response kept here, else fetched from it.
func (c *Component) relayKeys(ctx context.Context, server spec.ServerName) (map[gomatrixserverlib.KeyID]ed25519.PublicKey, error) {
	var keys gomatrixserverlib.ServerKeys
	raw, until, err := c.store.KeyResponse(ctx, string(server))
	if err == nil && until > c.now().UnixMilli() {
		if err := json.Unmarshal(raw, &keys); err != nil {
			return nil, fmt.Errorf("decode the kept keys of %s: %w", server, err)
		}
	} else if keys, err = c.fetchServerKeys(ctx, server); err != nil {
		return nil, err
	}
	out := map[gomatrixserverlib.KeyID]ed25519.PublicKey{}
	for id, k := range keys.VerifyKeys {
		out[id] = ed25519.PublicKey(k.Key)
	}
	return out, nil
}
