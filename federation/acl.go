package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path"
	"strings"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Server ACLs (m.room.server_acl): a room may deny servers; their PDUs and
// EDUs for the room are refused, and so are their requests about it.

// serverACL is the content of m.room.server_acl.
type serverACL struct {
	Allow           []string `json:"allow"`
	Deny            []string `json:"deny"`
	AllowIPLiterals *bool    `json:"allow_ip_literals"`
}

// allows reports whether the ACL lets server take part, by the spec's
// rules: IP literals first (when not allowed), then deny, then allow.
func (a serverACL) allows(server string) bool {
	host := server
	if h, _, err := net.SplitHostPort(server); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if (a.AllowIPLiterals == nil || !*a.AllowIPLiterals) && net.ParseIP(host) != nil {
		return false
	}
	for _, g := range a.Deny {
		if globMatch(g, host) {
			return false
		}
	}
	for _, g := range a.Allow {
		if globMatch(g, host) {
			return true
		}
	}
	return false
}

// globMatch matches a server name against an ACL glob (* and ?), case
// insensitively.
func globMatch(glob, name string) bool {
	// path.Match treats [ and \ specially; ACL globs know only * and ?.
	glob = strings.NewReplacer(`\`, `\\`, `[`, `\[`).Replace(strings.ToLower(glob))
	ok, err := path.Match(glob, name)
	return err == nil && ok && !strings.Contains(name, "/")
}

// aclAllows reports whether roomID's server ACL, if it has one, lets
// origin take part.
func (c *Component) aclAllows(ctx context.Context, roomID, origin string) (bool, error) {
	ev, err := c.rooms.CurrentStateEvent(ctx, roomID, rsapi.StateKey{Type: "m.room.server_acl"})
	if errors.Is(err, rsapi.ErrNotFound) || errors.Is(err, rsapi.ErrRoomNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	var pdu struct {
		Content serverACL `json:"content"`
	}
	if err := json.Unmarshal(ev.JSON, &pdu); err != nil {
		// An ACL that does not parse denies nobody.
		return true, nil
	}
	return pdu.Content.allows(origin), nil
}

// RequireACL wraps a handler of a room-scoped endpoint (its path has
// {roomID}): a server the room's ACL denies gets 403 M_FORBIDDEN.
func (c *Component) RequireACL(h httputil.HandlerFunc) httputil.HandlerFunc {
	return func(r *http.Request) (any, error) {
		roomID := httputil.PathParam(r, "roomID")
		if roomID != "" {
			ok, err := c.aclAllows(r.Context(), roomID, string(originOf(r)))
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, httputil.Forbidden("server ACL: this server may not take part in the room")
			}
		}
		return h(r)
	}
}
