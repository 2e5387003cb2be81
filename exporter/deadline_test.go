package exporter

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/procfs"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag/sockdiagtest"
	"golang.org/x/sys/unix"
)

// deafCollector blocks in Update, ignoring its context as a read stuck in
// the kernel would, until released.
type deafCollector struct {
	updates atomic.Int32
	release chan struct{}
}

func (c *deafCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.updates.Add(1)
	<-c.release
	return nil
}

// successOf gathers e once and returns each collector's success.
func successOf(t *testing.T, e *Exporter) map[string]float64 {
	t.Helper()
	registry := prometheus.NewRegistry()
	registry.MustRegister(e)
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "tcpadvisor_scrape_collector_success" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return got
}

// TestStuckCollectorIsLeftBehind: a collector deaf to its context fails at
// the deadline and the rest are answered; later collections do not wait for
// it, and do not start it again (one goroutine stuck, not one a scrape)
// until it returns.
func TestStuckCollectorIsLeftBehind(t *testing.T) {
	stuck := &deafCollector{release: make(chan struct{})}
	healthy := fakeCollector{desc: prometheus.NewDesc("test_healthy", "A test value.", nil, nil)}
	const timeout = 100 * time.Millisecond
	e := New(map[string]Collector{"stuck": stuck, "healthy": healthy}, timeout, discard)
	goroutines := runtime.NumGoroutine()

	for i := range 5 {
		start := time.Now()
		got := successOf(t, e)
		if elapsed := time.Since(start); elapsed > timeout+2*time.Second {
			t.Fatalf("collection %d took %v with a %v deadline", i, elapsed, timeout)
		}
		if got["stuck"] != 0 || got["healthy"] != 1 {
			t.Fatalf("collection %d: success = %v, want stuck 0 and healthy 1", i, got)
		}
	}
	if n := stuck.updates.Load(); n != 1 {
		t.Errorf("the stuck collector was started %d times in 5 collections, want once", n)
	}
	if grown := runtime.NumGoroutine() - goroutines; grown > 4 {
		t.Errorf("%d more goroutines after 5 collections over one stuck collector", grown)
	}

	close(stuck.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := successOf(t, e)
		if got["stuck"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the released collector still fails: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := stuck.updates.Load(); n != 2 {
		t.Errorf("the released collector was started %d times, want 2: once more after it returned", n)
	}
}

// TestBlockingProcfsFileIsBounded replaces a sysctl file of a procfs copy
// with a FIFO that nobody writes, as a hung /proc read: the sysctl collector
// fails at the deadline, the other collectors answer, and scrapes during the
// hang each answer within the deadline too.
func TestBlockingProcfsFileIsBounded(t *testing.T) {
	proc := copyTree(t, "testdata/proc")
	fifo := filepath.Join(proc, "sys/net/ipv4/tcp_fin_timeout")
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Opening the FIFO for writing at the end unblocks the stuck open.
	t.Cleanup(func() {
		if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			time.Sleep(100 * time.Millisecond)
			w.Close()
		}
	})
	fs, err := procfs.NewFS(proc)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 200 * time.Millisecond
	e, err := newExporter(Options{Collectors: CollectorNames, Timeout: timeout, Limits: census.Limits{}},
		hostSources(fs, proc, (&sockdiagtest.Conn{Sockets: fixtureSockets(t)}).Dial, nil), discard)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		start := time.Now()
		got := successOf(t, e)
		if elapsed := time.Since(start); elapsed > timeout+2*time.Second {
			t.Fatalf("scrape %d took %v with a %v deadline", i, elapsed, timeout)
		}
		want := map[string]float64{"netstat": 1, "sockets": 1, "sockstat": 1, "sysctl": 0}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("scrape %d: %s success = %v, want %v", i, name, got[name], w)
			}
		}
	}
	if n := testutil.CollectAndCount(e, "tcpadvisor_sockstat_tcp_tw"); n != 1 {
		t.Errorf("sockstat series = %d during the hang, want 1", n)
	}
}

// copyTree copies the regular files, directories and symbolic links under
// src into a temporary directory and returns it.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
