package exporter

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
)

func closerDestination(i int) census.Destination {
	return census.Destination{Source: netip.MustParseAddr("127.0.0.1"), Address: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Port: 6379}
}

// TestCloserBook: the owner with the most closes in the last 60 s is the
// closer; older closes name nobody; the book is bounded, and makes room
// from what expired.
func TestCloserBook(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	book := newCloserBook()
	book.now = func() time.Time { return now }
	app := census.Owner{Unit: "app.service", Process: "python3"}
	cron := census.Owner{Unit: "cron.service", Process: "report"}
	redis := closerDestination(1)
	closers := book.forNamespace("")

	book.record("", redis, app, 30)
	book.record("", redis, cron, 2)
	if got, ok := closers.Closer(redis); !ok || got != app {
		t.Errorf("closer = %v %v, want %v", got, ok, app)
	}
	if _, ok := book.forNamespace("other-ns").Closer(redis); ok {
		t.Error("another namespace's closes name a closer")
	}
	now = now.Add(45 * time.Second)
	book.record("", redis, cron, 5)
	now = now.Add(20 * time.Second)
	if got, ok := closers.Closer(redis); !ok || got != cron {
		t.Errorf("65 s after the app's closes: closer = %v %v, want %v", got, ok, cron)
	}
	now = now.Add(time.Minute)
	if got, ok := closers.Closer(redis); ok {
		t.Errorf("2 min after the last close: closer %v, want none", got)
	}

	for i := range maxCloserDestinations + 10 {
		book.record("", closerDestination(i+2), app, 1)
	}
	if n := len(book.entries); n > maxCloserDestinations {
		t.Errorf("%d destinations remembered, want at most %d", n, maxCloserDestinations)
	}
	// Full of live entries: a new destination is not remembered.
	book.record("", redis, app, 1)
	if _, ok := closers.Closer(redis); ok {
		t.Error("a destination was remembered past the cap")
	}
	busy := closerDestination(2)
	for i := range maxClosersPerDestination + 3 {
		book.record("", busy, census.Owner{Unit: fmt.Sprintf("w%d.service", i), Process: "w"}, uint64(i+10))
	}
	if e := book.entries[closerKey{dest: busy}]; e == nil || e.n > maxClosersPerDestination {
		t.Errorf("owners per destination not bounded: %+v", e)
	}
	last := census.Owner{Unit: fmt.Sprintf("w%d.service", maxClosersPerDestination+2), Process: "w"}
	if got, _ := closers.Closer(busy); got != last {
		t.Errorf("closer = %v, want the busiest, %v", got, last)
	}
}
