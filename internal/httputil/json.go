package httputil

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// DecodeJSON reads the request body into v, at most limit bytes. Too large
// is 413 M_TOO_LARGE, not JSON is 400 M_NOT_JSON, JSON of the wrong shape
// (a string where a number belongs, not an object) is 400 M_BAD_JSON.
func DecodeJSON(r *http.Request, limit int64, v any) error {
	body, err := ReadBody(r, limit)
	if err != nil {
		return err
	}
	return UnmarshalBody(body, v)
}

// ReadBody reads at most limit bytes of the request body.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, Errorf(CodeTooLarge, "request body is larger than %d bytes", limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, Errorf(CodeUnknown, "could not read request body").WithStatus(http.StatusBadRequest)
	}
	if int64(len(body)) > limit {
		return nil, Errorf(CodeTooLarge, "request body is larger than %d bytes", limit)
	}
	return body, nil
}

// UnmarshalBody decodes a JSON object into v with the errors DecodeJSON
// documents. An empty body counts as an empty object, as clients send no
// body for some POSTs that take only optional fields.
func UnmarshalBody(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		trimmed = []byte("{}")
	}
	if !json.Valid(trimmed) {
		return Errorf(CodeNotJSON, "request body is not valid JSON")
	}
	if trimmed[0] != '{' {
		return BadJSON("request body must be a JSON object")
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return BadJSON("field %q has the wrong type", typeErr.Field)
		}
		return BadJSON("request body has the wrong shape: %v", err)
	}
	return nil
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"errcode":"M_UNKNOWN","error":"could not encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
