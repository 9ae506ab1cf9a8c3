package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/config"
	fedstorage "github.com/matrix-gouv/homeserver/federation/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// ownKeys are the server's signing key and the old keys it published
// before a rotation.
type ownKeys struct {
	current config.SigningKey
	// old maps key ids to the public key and when it stopped being used.
	old map[gomatrixserverlib.KeyID]gomatrixserverlib.OldVerifyKey
}

// loadOwnKeys reads the current key and the old keys of the
// configuration.
func loadOwnKeys(signingKey string, old []config.OldSigningKey) (ownKeys, error) {
	key, err := config.ParseSigningKey(signingKey)
	if err != nil {
		return ownKeys{}, fmt.Errorf("parse signing key: %w", err)
	}
	k := ownKeys{current: key, old: map[gomatrixserverlib.KeyID]gomatrixserverlib.OldVerifyKey{}}
	for i, o := range old {
		ok, err := config.ParseSigningKey(o.Key)
		if err != nil {
			return ownKeys{}, fmt.Errorf("parse old signing key %d: %w", i, err)
		}
		expired, err := o.ExpiredAt()
		if err != nil {
			return ownKeys{}, fmt.Errorf("old signing key %d: expiry: %w", i, err)
		}
		if ok.ID == key.ID {
			return ownKeys{}, fmt.Errorf("old signing key %d has the current key's id %s", i, key.ID)
		}
		k.old[gomatrixserverlib.KeyID(ok.ID)] = gomatrixserverlib.OldVerifyKey{
			VerifyKey: gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(ok.Private.Public().(ed25519.PublicKey))},
			ExpiredTS: spec.AsTimestamp(expired),
		}
	}
	return k, nil
}

// publicKey returns the current verify key.
func (k ownKeys) publicKey() ed25519.PublicKey { return k.current.Private.Public().(ed25519.PublicKey) }

// ServerKeys answers GET /_matrix/key/v2/server with the server's current
// verify key, valid for the configured key validity from now, and the old
// keys (old_verify_keys), signed by the current key so that other servers
// (and notaries) can check it.
func (c *Component) ServerKeys(r *http.Request) (any, error) {
	signed, err := c.SignedServerKeys()
	if err != nil {
		return nil, err
	}
	return json.RawMessage(signed), nil
}

// SignedServerKeys returns the server's key response as canonical JSON
// signed with its signing key.
func (c *Component) SignedServerKeys() ([]byte, error) {
	keyID := gomatrixserverlib.KeyID(c.keys.current.ID)
	fields := gomatrixserverlib.ServerKeyFields{
		ServerName:    c.serverName,
		VerifyKeys:    map[gomatrixserverlib.KeyID]gomatrixserverlib.VerifyKey{keyID: {Key: spec.Base64Bytes(c.keys.publicKey())}},
		ValidUntilTS:  spec.AsTimestamp(c.now().Add(c.validity)),
		OldVerifyKeys: c.keys.old,
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode server keys: %w", err)
	}
	signed, err := gomatrixserverlib.SignJSON(string(c.serverName), keyID, c.keys.current.Private, raw)
	if err != nil {
		return nil, fmt.Errorf("sign server keys: %w", err)
	}
	return signed, nil
}

// notaryRequest is the body of POST /_matrix/key/v2/query.
type notaryRequest struct {
	ServerKeys map[string]map[string]struct {
		MinimumValidUntilTS int64 `json:"minimum_valid_until_ts"`
	} `json:"server_keys"`
}

// notaryResponse is the answer of both notary endpoints.
type notaryResponse struct {
	ServerKeys []json.RawMessage `json:"server_keys"`
}

// maxNotaryServers bounds the servers one notary query may name.
const maxNotaryServers = 100

// NotaryQuery answers POST /_matrix/key/v2/query: for each server named,
// its key response (fetched or cached), countersigned by this server.
func (c *Component) NotaryQuery(r *http.Request) (any, error) {
	var req notaryRequest
	if err := httputil.DecodeJSON(r, 1<<20, &req); err != nil {
		return nil, err
	}
	if len(req.ServerKeys) > maxNotaryServers {
		return nil, httputil.InvalidParam("at most %d servers per query", maxNotaryServers)
	}
	out := notaryResponse{ServerKeys: []json.RawMessage{}}
	for server, keys := range req.ServerKeys {
		var minValid int64
		for _, crit := range keys {
			minValid = max(minValid, crit.MinimumValidUntilTS)
		}
		if js := c.notaryAnswer(r.Context(), server, minValid); js != nil {
			out.ServerKeys = append(out.ServerKeys, js)
		}
	}
	return out, nil
}

// NotaryQueryServer answers GET /_matrix/key/v2/query/{serverName}.
func (c *Component) NotaryQueryServer(r *http.Request) (any, error) {
	var minValid int64
	if v := r.URL.Query().Get("minimum_valid_until_ts"); v != "" {
		if _, err := fmt.Sscan(v, &minValid); err != nil {
			return nil, httputil.InvalidParam("minimum_valid_until_ts must be a number")
		}
	}
	out := notaryResponse{ServerKeys: []json.RawMessage{}}
	if js := c.notaryAnswer(r.Context(), httputil.PathParam(r, "serverName"), minValid); js != nil {
		out.ServerKeys = append(out.ServerKeys, js)
	}
	return out, nil
}

// notaryAnswer returns serverName's key response countersigned by this
// server, or nil when it has none valid long enough and cannot fetch one
// (the spec: servers that cannot be reached are left out). Our own keys
// are answered from the configuration.
func (c *Component) notaryAnswer(ctx context.Context, serverName string, minValid int64) json.RawMessage {
	var js []byte
	if serverName == string(c.serverName) {
		signed, err := c.SignedServerKeys()
		if err != nil {
			return nil
		}
		return signed
	}
	cached, until, err := c.store.KeyResponse(ctx, serverName)
	switch {
	case err == nil && until >= minValid && until > c.now().UnixMilli():
		js = cached
	case c.cfg.ServerAllowed(serverName):
		fetched, ferr := c.fetchServerKeys(ctx, spec.ServerName(serverName))
		if ferr == nil {
			js = fetched.Raw
		} else if err == nil {
			js = cached // stale is better than nothing; its validity says so
		}
	case err == nil:
		js = cached
	}
	if js == nil {
		return nil
	}
	signed, err := gomatrixserverlib.SignJSON(string(c.serverName), gomatrixserverlib.KeyID(c.keys.current.ID), c.keys.current.Private, js)
	if err != nil {
		return nil
	}
	return signed
}

// keyDatabase is the key ring's cache of remote keys, on the federation
// tables, and its fetcher: keys not cached (or no longer valid) are
// fetched from the server itself (/_matrix/key/v2/server), checked, and
// stored with the raw response for the notary. It implements
// gomatrixserverlib.KeyDatabase.
type keyDatabase struct{ c *Component }

// FetcherName implements gomatrixserverlib.KeyFetcher.
func (keyDatabase) FetcherName() string { return "federation key store" }

// FetchKeys implements gomatrixserverlib.KeyFetcher from the cache only.
func (d keyDatabase) FetchKeys(ctx context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	for req := range reqs {
		if req.ServerName == d.c.serverName {
			if res, ok := d.c.ownKey(req.KeyID); ok {
				out[req] = res
			}
			continue
		}
		k, err := d.c.store.Key(ctx, string(req.ServerName), string(req.KeyID))
		if errors.Is(err, fedstorage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		pub, err := base64.RawStdEncoding.DecodeString(k.PublicKey)
		if err != nil {
			continue
		}
		out[req] = gomatrixserverlib.PublicKeyLookupResult{
			VerifyKey:    gomatrixserverlib.VerifyKey{Key: pub},
			ValidUntilTS: spec.Timestamp(k.ValidUntilTS),
			ExpiredTS:    spec.Timestamp(k.ExpiredTS),
		}
	}
	return out, nil
}

// StoreKeys implements gomatrixserverlib.KeyDatabase.
func (d keyDatabase) StoreKeys(ctx context.Context, results map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) error {
	keys := make([]fedstorage.ServerKey, 0, len(results))
	for req, res := range results {
		if req.ServerName == d.c.serverName {
			continue
		}
		keys = append(keys, fedstorage.ServerKey{
			ServerName: string(req.ServerName), KeyID: string(req.KeyID),
			PublicKey:    base64.RawStdEncoding.EncodeToString(res.Key),
			ValidUntilTS: int64(res.ValidUntilTS), ExpiredTS: int64(res.ExpiredTS),
		})
	}
	return d.c.store.StoreKeys(ctx, keys)
}

// ownKey returns one of the server's own keys as a lookup result.
func (c *Component) ownKey(keyID gomatrixserverlib.KeyID) (gomatrixserverlib.PublicKeyLookupResult, bool) {
	if string(keyID) == c.keys.current.ID {
		return gomatrixserverlib.PublicKeyLookupResult{
			VerifyKey:    gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(c.keys.publicKey())},
			ValidUntilTS: spec.AsTimestamp(c.now().Add(c.validity)),
		}, true
	}
	if o, ok := c.keys.old[keyID]; ok {
		return gomatrixserverlib.PublicKeyLookupResult{VerifyKey: o.VerifyKey, ExpiredTS: o.ExpiredTS}, true
	}
	return gomatrixserverlib.PublicKeyLookupResult{}, false
}

// directFetcher fetches keys from the servers themselves, through the
// federation client (so only from allowed servers). It implements
// gomatrixserverlib.KeyFetcher.
type directFetcher struct{ c *Component }

// FetcherName implements gomatrixserverlib.KeyFetcher.
func (directFetcher) FetcherName() string { return "direct" }

// keyFetchTimeout bounds one server's key fetch.
const keyFetchTimeout = 15 * time.Second

// FetchKeys implements gomatrixserverlib.KeyFetcher: one request per
// server named, whatever keys of it are asked for.
func (f directFetcher) FetchKeys(ctx context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	servers := map[spec.ServerName]bool{}
	for req := range reqs {
		servers[req.ServerName] = true
	}
	for server := range servers {
		if server == f.c.serverName || !f.c.cfg.ServerAllowed(string(server)) {
			continue
		}
		keys, err := f.c.fetchServerKeys(ctx, server)
		if err != nil {
			f.c.log.WithError(err).WithField(fieldServer, server).Warn("fetch server keys")
			continue
		}
		for id, k := range keys.VerifyKeys {
			out[gomatrixserverlib.PublicKeyLookupRequest{ServerName: server, KeyID: id}] = gomatrixserverlib.PublicKeyLookupResult{
				VerifyKey: k, ValidUntilTS: keys.ValidUntilTS,
			}
		}
		for id, k := range keys.OldVerifyKeys {
			out[gomatrixserverlib.PublicKeyLookupRequest{ServerName: server, KeyID: id}] = gomatrixserverlib.PublicKeyLookupResult{
				VerifyKey: k.VerifyKey, ExpiredTS: k.ExpiredTS,
			}
		}
	}
	return out, nil
}

// fetchServerKeys fetches a server's key response, checks it (signed by
// its own keys, for that server) and keeps it for the notary.
func (c *Component) fetchServerKeys(ctx context.Context, server spec.ServerName) (gomatrixserverlib.ServerKeys, error) {
	ctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
	defer cancel()
	keys, err := c.client.GetServerKeys(ctx, server)
	if err != nil {
		return keys, fmt.Errorf("fetch keys of %s: %w", server, err)
	}
	checks, _ := gomatrixserverlib.CheckKeys(server, time.Unix(0, 0), keys)
	if !checks.AllChecksOK {
		return keys, fmt.Errorf("keys of %s fail the checks", server)
	}
	if err := c.store.StoreKeyResponse(ctx, string(server), int64(keys.ValidUntilTS), keys.Raw); err != nil {
		return keys, err
	}
	return keys, nil
}
