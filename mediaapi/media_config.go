package mediaapi

import "net/http"

// configResponse is the body of GET /_matrix/client/v1/media/config.
type configResponse struct {
	// UploadSize is the largest upload accepted, in bytes.
	UploadSize int64 `json:"m.upload.size"`
}

// getConfig answers the media configuration: the upload size limit.
func (c *Component) getConfig(r *http.Request) (any, error) {
	return configResponse{UploadSize: c.cfg.MaxUploadBytes}, nil
}
