package fleet

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Handler serves the fleet's advice at every request, read-only: an HTML
// page, or JSON for ?format=json or Accept: application/json. A request
// waits for the server at most timeout; when the server fails, it answers
// 502 with the one-line reason.
func Handler(c *Client, timeout time.Duration, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the fleet page is read-only: GET it", http.StatusMethodNotAllowed)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		report, err := Build(ctx, c.fresh(), time.Now(), logger)
		if err != nil {
			logger.Warn("fleet advice failed", "err", err)
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			err = JSON(w, report)
		} else {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			err = HTML(w, report)
		}
		if err != nil {
			logger.Error("write fleet advice", "err", err)
		}
	})
}
