package exporter

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/tracer"
)

const connectionsGoldenPath = "testdata/connections.golden"

// fixtureTracer hands out one drain after another, then drains with no
// new counts: the overflow and event counters, cumulative in the kernel,
// keep their last values.
type fixtureTracer struct {
	drains []tracer.Drained
	last   tracer.Drained
	closed bool
	// failNext makes the next drain fail after its keys were read.
	failNext bool
}

func (f *fixtureTracer) Drain() (*tracer.Drained, error) {
	if f.failNext && len(f.drains) > 0 {
		f.failNext = false
		d := tracer.Drained{Outbound: f.drains[0].Outbound}
		f.drains = f.drains[1:]
		return &d, errors.New("drain the inbound map: fault injected")
	}
	if len(f.drains) == 0 {
		return &tracer.Drained{OutboundOverflow: f.last.OutboundOverflow, InboundOverflow: f.last.InboundOverflow, Events: f.last.Events}, nil
	}
	f.last = f.drains[0]
	f.drains = f.drains[1:]
	return &f.last, nil
}

func (f *fixtureTracer) Sockets(func(uint32, uint64, string)) error { return nil }
func (f *fixtureTracer) Hook() string                               { return tracer.HookBTF }
func (f *fixtureTracer) Close() error {
	f.closed = true
	return nil
}

// fakeUnits names cgroup IDs, as the owners resolver does.
type fakeUnits map[uint64]string

func (fakeUnits) Refresh(context.Context) {}

func (u fakeUnits) Lookup(cgroupID uint64, _ uint32) census.Owner {
	if unit, ok := u[cgroupID]; ok {
		return census.Owner{Unit: unit, Process: census.UnknownOwner.Process}
	}
	return census.UnknownOwner
}

func (fakeUnits) Runtime(string) string { return "" }

func outbound(dest string, port uint16, cgroup uint64, process string, counts tracer.OutboundCounts) tracer.Outbound {
	return tracer.Outbound{Netns: 1, Cgroup: cgroup, Process: process, Source: netip.MustParseAddr("10.0.0.1"),
		Destination: netip.MustParseAddr(dest), Port: port, Counts: counts}
}

// fixtureDrains are two scrapes' worth of a host: a per-request client of
// Redis failing for want of ports, a pooled one, a refused one, more
// destinations than the cap, and an nginx whose backend closes first.
func fixtureDrains() []tracer.Drained {
	perRequest := tracer.OutboundCounts{Opened: 1000, Closed: [tracer.NumClosers]uint64{tracer.ClosedLocal: 990},
		Failed: [tracer.NumFailures]uint64{tracer.FailureEADDRNOTAVAIL: 120}, LifetimeNanos: 990 * 400_000, Lifetimes: 990}
	pooled := tracer.OutboundCounts{Opened: 10}
	refused := tracer.OutboundCounts{Failed: [tracer.NumFailures]uint64{tracer.FailureECONNREFUSED: 3}}
	first := tracer.Drained{
		Outbound: []tracer.Outbound{
			outbound("10.0.0.5", 6379, 100, "python3", perRequest),
			outbound("10.0.0.5", 6379, 200, "api", pooled),
			outbound("10.0.0.6", 5432, 100, "python3", refused),
			outbound("10.0.0.7", 80, 300, "", tracer.OutboundCounts{Opened: 1}),
			outbound("10.0.0.8", 80, 300, "curl", tracer.OutboundCounts{Opened: 2}),
		},
		Inbound: []tracer.Inbound{
			{Netns: 1, Port: 8000, Counts: tracer.InboundCounts{Accepted: 500, Closed: [tracer.NumClosers]uint64{tracer.ClosedLocal: 490, tracer.ClosedReset: 5}, LifetimeNanos: 495 * 2_000_000, Lifetimes: 495}},
			{Netns: 1, Port: 22, Counts: tracer.InboundCounts{Accepted: 1}},
			{Netns: 1, Port: 9100, Counts: tracer.InboundCounts{Accepted: 7}},
		},
		Events: [tracer.NumEvents]uint64{tracer.EventUntrackedClose: 4},
	}
	second := tracer.Drained{
		Outbound: []tracer.Outbound{outbound("10.0.0.5", 6379, 100, "python3", perRequest)},
		// Both kernel maps overflowed: cumulative in the kernel.
		OutboundOverflow: tracer.OutboundCounts{Opened: 6},
		InboundOverflow:  tracer.InboundCounts{Accepted: 2},
		Events:           [tracer.NumEvents]uint64{tracer.EventOutboundFull: 6, tracer.EventInboundFull: 2, tracer.EventUntrackedClose: 4},
	}
	return []tracer.Drained{first, second}
}

// TestConnectionsGolden drains the fixture tracer twice and compares the
// second scrape with testdata/connections.golden; run with -update to
// rewrite it. The first scrape's counters only grow in the second.
func TestConnectionsGolden(t *testing.T) {
	fixture := &fixtureTracer{drains: fixtureDrains()}
	c := NewConnectionsCollector(ConnectionsSources{
		Load:   func() (ConnectionTracer, error) { return fixture, nil },
		Owners: fakeUnits{100: "app.service", 200: "api.service", 300: "cron.service"},
	}, census.Limits{TopDestinations: 3, TopOwners: 1, MaxServicePorts: 2}, 1, discard)
	e := New(map[string]Collector{"connections": c}, 5*time.Second, discard)
	first := gather(t, e)
	got := durationLine.ReplaceAllString(scrape(t, e), "$1 0")
	second := gather(t, e)
	for k, v := range first {
		if strings.HasSuffix(strings.SplitN(k, "{", 2)[0], "_total") && second[k] < v {
			t.Errorf("%s went down from %v to %v", k, v, second[k])
		}
	}
	if *update {
		if err := os.WriteFile(connectionsGoldenPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(connectionsGoldenPath)
	if err != nil {
		t.Fatalf("%v (run go test ./exporter -run TestConnectionsGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("exposition differs from %s; if the change is meant, rerun with -update and review the diff.\n%s", connectionsGoldenPath, lineDiff(string(want), got))
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(want)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
	c.Close()
	if !fixture.closed {
		t.Error("Close left the tracer attached")
	}
}

// TestConnectionsDown: a tracer that did not load is reported, with its
// reason, and the collector succeeds.
func TestConnectionsDown(t *testing.T) {
	c := NewConnectionsCollector(ConnectionsSources{
		Load: func() (ConnectionTracer, error) {
			return nil, &tracer.LoadError{Reason: tracer.ReasonKernelTooOld, Err: errors.New("no tp_btf")}
		},
	}, census.Limits{}, 1, discard)
	values := gather(t, New(map[string]Collector{"connections": c}, 5*time.Second, discard))
	expect(t, values, map[string]float64{
		`tcpadvisor_tracer_up{}`:                                       0,
		`tcpadvisor_tracer_down_reason{reason="kernel_too_old"}`:       1,
		`tcpadvisor_scrape_collector_success{collector="connections"}`: 1,
	})
}

// TestConnectionsDrainFails: a drain that fails half-way fails the
// collector for that scrape, and what it had moved out of the kernel shows
// in the next one.
func TestConnectionsDrainFails(t *testing.T) {
	fixture := &fixtureTracer{failNext: true, drains: []tracer.Drained{{
		Outbound: []tracer.Outbound{outbound("10.0.0.5", 6379, 100, "python3", tracer.OutboundCounts{Opened: 7})},
	}}}
	c := NewConnectionsCollector(ConnectionsSources{
		Load: func() (ConnectionTracer, error) { return fixture, nil },
	}, census.Limits{}, 1, discard)
	e := New(map[string]Collector{"connections": c}, 5*time.Second, discard)
	opened := series("tcpadvisor_outbound_connections_opened_total", "destination_address", "10.0.0.5", "destination_port", "6379",
		"owner", "unknown", "process", "python3", "source_address", "10.0.0.1")
	success := `tcpadvisor_scrape_collector_success{collector="connections"}`
	if values := gather(t, e); values[success] != 0 {
		t.Errorf("the failed drain: success %v, want 0", values[success])
	}
	expect(t, gather(t, e), map[string]float64{success: 1, opened: 7})
}
