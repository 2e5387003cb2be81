package main

import (
	"net/http"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/exporter"
)

// FuzzParsePinnedDestination checks that any --collector.sockets.pin-destination
// value parses or fails cleanly, and that what parses has an address and a
// port other than 0.
func FuzzParsePinnedDestination(f *testing.F) {
	for _, seed := range []string{"10.0.0.5:6379", "[2001:db8::5]:6379", "10.0.0.5:0", "redis:6379", "10.0.0.5", "[::ffff:10.0.0.5]:1", ":80"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := exporter.ParsePinnedDestination(s)
		if ok && (d.Port() == 0 || !d.Addr().IsValid()) {
			t.Fatalf("ParsePinnedDestination(%q) = %v, accepted", s, d)
		}
	})
}

// FuzzValidTelemetryPath checks that every --web.telemetry-path the flag
// accepts can be served beside the daemon's other paths: registering it
// must not panic, as a bad pattern makes http.ServeMux do.
func FuzzValidTelemetryPath(f *testing.F) {
	for _, seed := range []string{"/metrics", "/", "", "foo", "/advice", "/a b", "/{x}", "/a/../b", "//x", "/metrics/", "/%41", "/a?b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !validTelemetryPath(p) {
			return
		}
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("--web.telemetry-path=%q was accepted, and ServeMux panics on it: %v", p, r)
			}
		}()
		mux := http.NewServeMux()
		mux.Handle("/advice", http.NotFoundHandler())
		mux.Handle(p, http.NotFoundHandler())
		if p != "/" {
			mux.Handle("/", http.NotFoundHandler())
		}
	})
}
