package accountdata

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// tagContent is the content of m.tag: tag name → tag (with its order).
type tagContent struct {
	Tags map[string]json.RawMessage `json:"tags"`
}

// tags reads userID's tags of roomID.
func (h *Handlers) tags(ctx context.Context, userID, roomID string) (tagContent, error) {
	c := tagContent{Tags: map[string]json.RawMessage{}}
	raw, err := h.Store.GetAccountData(ctx, userID, roomID, typeTag)
	if errors.Is(err, storage.ErrNotFound) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	_ = json.Unmarshal(raw, &c)
	if c.Tags == nil {
		c.Tags = map[string]json.RawMessage{}
	}
	return c, nil
}

// GetTags serves GET /user/{userID}/rooms/{roomID}/tags.
func (h *Handlers) GetTags(r *http.Request) (any, error) {
	userID, err := owner(r)
	if err != nil {
		return nil, err
	}
	return h.tags(r.Context(), userID, httputil.PathParam(r, "roomID"))
}

// PutTag serves PUT /user/{userID}/rooms/{roomID}/tags/{tag}.
func (h *Handlers) PutTag(r *http.Request) (any, error) {
	userID, err := owner(r)
	if err != nil {
		return nil, err
	}
	body, err := h.readObject(r)
	if err != nil {
		return nil, err
	}
	var tag struct {
		Order *float64 `json:"order"`
	}
	if err := json.Unmarshal(body, &tag); err != nil {
		return nil, httputil.BadJSON("order must be a number")
	}
	roomID := httputil.PathParam(r, "roomID")
	c, err := h.tags(r.Context(), userID, roomID)
	if err != nil {
		return nil, err
	}
	c.Tags[httputil.PathParam(r, "tag")] = body
	return struct{}{}, h.putTags(r.Context(), userID, roomID, c)
}

// DeleteTag serves DELETE /user/{userID}/rooms/{roomID}/tags/{tag}.
func (h *Handlers) DeleteTag(r *http.Request) (any, error) {
	userID, err := owner(r)
	if err != nil {
		return nil, err
	}
	roomID := httputil.PathParam(r, "roomID")
	c, err := h.tags(r.Context(), userID, roomID)
	if err != nil {
		return nil, err
	}
	delete(c.Tags, httputil.PathParam(r, "tag"))
	return struct{}{}, h.putTags(r.Context(), userID, roomID, c)
}

func (h *Handlers) putTags(ctx context.Context, userID, roomID string, c tagContent) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return h.Put(ctx, userID, roomID, typeTag, raw)
}
