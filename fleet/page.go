package fleet

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor/render"
)

// Handler serves the fleet's advice at every request, read-only: an HTML
// page, reloaded every N seconds with ?refresh=N, or JSON for ?format=json
// or Accept: application/json. Requests that arrive while a report is being
// built get that report, so that a room of browsers costs the server one
// report's queries, not one per reader. A report waits for the server at
// most timeout; when the server fails, the request answers 502 with the
// one-line reason.
func Handler(c *Client, timeout time.Duration, logger *slog.Logger) http.Handler {
	reports := &sharedReports{client: c, timeout: timeout, logger: logger}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the fleet page is read-only: GET it", http.StatusMethodNotAllowed)
			return
		}
		refresh, err := render.ParseRefresh(r.URL.Query().Get("refresh"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		report, err := reports.get(r.Context())
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
			err = HTML(w, report, refresh)
		}
		if err != nil {
			logger.Error("write fleet advice", "err", err)
		}
	})
}

// sharedReports builds at most one report at a time, for every request
// that waits for it.
type sharedReports struct {
	client  *Client
	timeout time.Duration
	logger  *slog.Logger

	mu       sync.Mutex
	building *build // nil when no report is being built
}

// build is one report under way; done closes when report and err are set.
type build struct {
	done   chan struct{}
	report Report
	err    error
}

// get returns the report being built, or starts one; it returns early with
// ctx's error when ctx ends first. The report is built under a deadline of
// its own, so that a reader who leaves does not cancel it for the others.
func (s *sharedReports) get(ctx context.Context) (Report, error) {
	s.mu.Lock()
	b := s.building
	if b == nil {
		b = &build{done: make(chan struct{})}
		s.building = b
		go func() {
			buildCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
			defer cancel()
			b.report, b.err = Build(buildCtx, s.client.fresh(), time.Now(), s.logger)
			s.mu.Lock()
			s.building = nil
			s.mu.Unlock()
			close(b.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-b.done:
		return b.report, b.err
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
}
