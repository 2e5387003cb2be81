package exporter

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/tracer"
)

// ConnectionTracer is what the connections collector needs of the loaded
// tracer: a *tracer.Tracer, or a fixture in tests.
type ConnectionTracer interface {
	// Drain moves the counts out of the kernel's maps.
	Drain() (*tracer.Drained, error)
	// Sockets lists the live connections seen opened by connect().
	Sockets(fn func(inode uint32, cgroup uint64, process string)) error
	// Hook says how the program is attached.
	Hook() string
	// Close detaches the program.
	Close() error
}

// ConnectionsSources are what a ConnectionsCollector reads.
type ConnectionsSources struct {
	// Load loads and attaches the tracer; it is called once.
	Load func() (ConnectionTracer, error)
	// NetnsName names the network namespace of an inode number for the
	// netns label; nil when series carry no netns label (the tracer then
	// sees the exporter's own namespace only).
	NetnsName func(inode uint32) string
	// Owners, when set, names the unit or container of a cgroup ID.
	Owners OwnerResolver
	// Closers, when set, is told who closed first toward each destination,
	// for the sockets collectors' TIME_WAIT attribution.
	Closers *closerBook
}

// ConnectionsCollector reports what the connection tracer counted in the
// kernel: connections opened, connect() failures by errno, connections
// accepted, who closed first and connection lifetimes, per destination and
// owner or per service port. When the tracer cannot run it says why, in the
// log once and in tcpadvisor_tracer_up and tcpadvisor_tracer_down_reason.
type ConnectionsCollector struct {
	sources ConnectionsSources
	logger  *slog.Logger

	// mu guards the tracer's maps, drained one scrape at a time, and the
	// tables of cumulative counts.
	mu      sync.Mutex
	tracer  ConnectionTracer
	loadErr *tracer.LoadError
	tables  *tracer.Tables
	// overflow* are the kernel's cumulative overflow counts last added.
	overflowOut tracer.OutboundCounts
	overflowIn  tracer.InboundCounts

	upDesc         *prometheus.Desc
	downDesc       *prometheus.Desc
	hookDesc       *prometheus.Desc
	eventsDesc     *prometheus.Desc
	openedDesc     *prometheus.Desc
	failedDesc     *prometheus.Desc
	closedDesc     *prometheus.Desc
	lifetimeDesc   *prometheus.Desc
	acceptedDesc   *prometheus.Desc
	inClosedDesc   *prometheus.Desc
	inLifetimeDesc *prometheus.Desc
}

// NewConnectionsCollector loads the tracer from sources and returns its
// collector, bounded by limits (top destinations, owners and service ports,
// as the sockets collector's) and maxNamespaces. A tracer that does not load
// is logged once, as a warning: the collector then reports only why.
func NewConnectionsCollector(sources ConnectionsSources, limits census.Limits, maxNamespaces int, logger *slog.Logger) *ConnectionsCollector {
	var nsLabel []string
	if sources.NetnsName != nil {
		nsLabel = []string{NetnsLabel}
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	outbound := append(nsLabel, "source_address", "destination_address", "destination_port", "owner", "process")
	inbound := append(nsLabel[:len(nsLabel):len(nsLabel)], "port")
	c := &ConnectionsCollector{
		sources: sources,
		logger:  logger,
		tables: tracer.NewTables(tracer.Limits{
			Namespaces:   maxNamespaces,
			Destinations: limits.TopDestinations,
			Owners:       limits.TopOwners,
			Ports:        limits.MaxServicePorts,
		}),
		upDesc: desc("tracer_up",
			"1 if the connection tracer's eBPF program is attached and its counters are exported; 0 if not, with the reason in tcpadvisor_tracer_down_reason."),
		downDesc: desc("tracer_down_reason",
			"1 for why the connection tracer is not running: no_btf (no /sys/kernel/btf/vmlinux), no_privileges (CAP_BPF and CAP_PERFMON missing), kernel_too_old (no tp_btf or raw tracepoint for sock:inet_sock_set_state), verifier_rejected, load_failed.",
			"reason"),
		hookDesc: desc("tracer_hook_info",
			"1 for how the connection tracer is attached to sock:inet_sock_set_state: tp_btf, or raw_tracepoint where tp_btf does not load.",
			"hook"),
		eventsDesc: desc("tracer_events_total",
			"State changes the tracer could not count in full: outbound_map_full and inbound_map_full (the kernel map held no room for a new key; the change was counted in the \"other\" series), untracked_close (an established connection ended that the tracer did not see open; not counted).",
			"event"),
		openedDesc: desc("outbound_connections_opened_total",
			"Outbound TCP connections established (SYN_SENT -> ESTABLISHED), by destination and owner: the unit or container of the socket's cgroup and the process that called connect(). The top destinations of --collector.sockets.top-destinations and owners of --collector.sockets.top-owners have series of their own, the rest are summed into \"other\".",
			outbound...),
		failedDesc: desc("outbound_connect_failures_total",
			"connect() calls that failed, by destination, owner and errno: EADDRNOTAVAIL (no free ephemeral port toward the destination: connect() itself failed), ECONNREFUSED, ETIMEDOUT, ENETUNREACH, EHOSTUNREACH, or other (another error, or the socket closed while connecting).",
			append(outbound[:len(outbound):len(outbound)], "errno")...),
		closedDesc: desc("outbound_connections_closed_total",
			"Established outbound connections ended, by destination, owner and who closed first: local (this host, whose side then holds the TIME_WAIT), peer, or reset.",
			append(outbound[:len(outbound):len(outbound)], "closed_by")...),
		lifetimeDesc: desc("outbound_connection_lifetime_seconds",
			"Time outbound connections stayed established, from established to the first close or reset, by destination and owner: rate(_sum) / rate(_count) is the mean lifetime.",
			outbound...),
		acceptedDesc: desc("inbound_connections_accepted_total",
			"Inbound TCP connections established (SYN_RECV -> ESTABLISHED) on a local service port; ports past --collector.sockets.max-service-ports are summed into port=\"other\".",
			inbound...),
		inClosedDesc: desc("inbound_connections_closed_total",
			"Established inbound connections ended, by service port and who closed first: local (this host, whose side then holds the TIME_WAIT), peer, or reset.",
			append(inbound[:len(inbound):len(inbound)], "closed_by")...),
		inLifetimeDesc: desc("inbound_connection_lifetime_seconds",
			"Time inbound connections stayed established, by service port: rate(_sum) / rate(_count) is the mean lifetime.",
			inbound...),
	}
	t, err := sources.Load()
	if err != nil {
		var loadErr *tracer.LoadError
		if !errors.As(err, &loadErr) {
			loadErr = &tracer.LoadError{Reason: tracer.ReasonLoadFailed, Err: err}
		}
		c.loadErr = loadErr
		logger.Warn("connection tracer off: the connections collector reports only why (tcpadvisor_tracer_down_reason); everything else is collected",
			"reason", string(loadErr.Reason), "err", loadErr.Err)
		return c
	}
	c.tracer = t
	logger.Info("connection tracer attached", "hook", t.Hook())
	return c
}

// eachSocket calls fn for each live connection the tracer saw opened by
// connect(); for none when the tracer is down.
func (c *ConnectionsCollector) eachSocket(fn func(inode uint32, cgroup uint64, process string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tracer == nil {
		return
	}
	if err := c.tracer.Sockets(fn); err != nil {
		c.logger.Debug("read the tracer's live connections", "err", err)
	}
}

// Close detaches the tracer.
func (c *ConnectionsCollector) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tracer != nil {
		c.tracer.Close()
		c.tracer = nil
	}
}

// Update drains the kernel maps into the tables and sends their totals.
func (c *ConnectionsCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tracer == nil {
		ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, 0)
		if c.loadErr != nil {
			ch <- prometheus.MustNewConstMetric(c.downDesc, prometheus.GaugeValue, 1, string(c.loadErr.Reason))
		}
		return nil
	}
	d, err := c.tracer.Drain()
	if err != nil {
		if d != nil {
			// Gone from the kernel already: keep what was read.
			c.addCounts(d)
		}
		return err
	}
	c.addCounts(d)
	c.addOverflow(d)
	ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.hookDesc, prometheus.GaugeValue, 1, c.tracer.Hook())
	for event, name := range []string{"outbound_map_full", "inbound_map_full", "untracked_close"} {
		ch <- prometheus.MustNewConstMetric(c.eventsDesc, prometheus.CounterValue, float64(d.Events[event]), name)
	}
	c.send(ch)
	return nil
}

// addCounts folds the keys of one drain into the tables.
func (c *ConnectionsCollector) addCounts(d *tracer.Drained) {
	for i := range d.Outbound {
		o := &d.Outbound[i]
		dest := tracer.Destination{Source: o.Source, Address: o.Destination, Port: o.Port}
		owner := tracer.Owner{Cgroup: o.Cgroup, Process: o.Process}
		netns := c.netnsName(o.Netns)
		c.tables.AddOutbound(netns, dest, owner, &o.Counts)
		if closes := o.Counts.Closed[tracer.ClosedLocal]; closes > 0 && c.sources.Closers != nil {
			unit, process := c.ownerLabels(owner)
			c.sources.Closers.record(netns, census.Destination(dest), census.Owner{Unit: unit, Process: process}, closes)
		}
	}
	for i := range d.Inbound {
		in := &d.Inbound[i]
		c.tables.AddInbound(c.netnsName(in.Netns), in.Port, &in.Counts)
	}
}

// addOverflow adds what the kernel counted in its overflow entries since
// the last drain: they are cumulative in the kernel.
func (c *ConnectionsCollector) addOverflow(d *tracer.Drained) {
	out, in := d.OutboundOverflow, d.InboundOverflow
	newOut, newIn := subtractOutbound(out, c.overflowOut), subtractInbound(in, c.overflowIn)
	c.overflowOut, c.overflowIn = out, in
	if newOut != (tracer.OutboundCounts{}) || newIn != (tracer.InboundCounts{}) {
		netns := ""
		if c.sources.NetnsName != nil {
			netns = tracer.OtherLabel
		}
		c.tables.AddOverflow(netns, &newOut, &newIn)
	}
}

func (c *ConnectionsCollector) netnsName(inode uint32) string {
	if c.sources.NetnsName == nil {
		return ""
	}
	return c.sources.NetnsName(inode)
}

func subtractOutbound(a, b tracer.OutboundCounts) tracer.OutboundCounts {
	a.Opened -= b.Opened
	for i := range a.Failed {
		a.Failed[i] -= b.Failed[i]
	}
	for i := range a.Closed {
		a.Closed[i] -= b.Closed[i]
	}
	a.LifetimeNanos -= b.LifetimeNanos
	a.Lifetimes -= b.Lifetimes
	return a
}

func subtractInbound(a, b tracer.InboundCounts) tracer.InboundCounts {
	a.Accepted -= b.Accepted
	for i := range a.Closed {
		a.Closed[i] -= b.Closed[i]
	}
	a.LifetimeNanos -= b.LifetimeNanos
	a.Lifetimes -= b.Lifetimes
	return a
}

// send sends the tables' totals. Rows whose labels come out the same (two
// cgroups of one unit, say) are summed into one series.
func (c *ConnectionsCollector) send(ch chan<- prometheus.Metric) {
	labelled := c.sources.NetnsName != nil
	outbound := map[[6]string]*tracer.OutboundCounts{}
	var order [][6]string
	inbound := map[[2]string]*tracer.InboundCounts{}
	var inOrder [][2]string
	c.tables.Each(func(r tracer.OutboundRow) {
		k := [6]string{r.Netns, otherLabel, otherLabel, otherLabel, otherLabel, otherLabel}
		if r.Destination != nil {
			k[1], k[2], k[3] = r.Destination.Source.String(), r.Destination.Address.String(), strconv.Itoa(int(r.Destination.Port))
		}
		if r.Owner != nil {
			k[4], k[5] = c.ownerLabels(*r.Owner)
		}
		sum, ok := outbound[k]
		if !ok {
			sum = &tracer.OutboundCounts{}
			outbound[k] = sum
			order = append(order, k)
		}
		sum.Add(r.Counts)
	}, func(r tracer.InboundRow) {
		k := [2]string{r.Netns, otherLabel}
		if r.Port != 0 {
			k[1] = strconv.Itoa(int(r.Port))
		}
		sum, ok := inbound[k]
		if !ok {
			sum = &tracer.InboundCounts{}
			inbound[k] = sum
			inOrder = append(inOrder, k)
		}
		sum.Add(r.Counts)
	})
	counter := func(desc *prometheus.Desc, v uint64, labels []string, extra ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), append(labels[:len(labels):len(labels)], extra...)...)
	}
	for _, k := range order {
		counts := outbound[k]
		labels := k[:]
		if !labelled {
			labels = k[1:]
		}
		counter(c.openedDesc, counts.Opened, labels)
		for f := range tracer.NumFailures {
			counter(c.failedDesc, counts.Failed[f], labels, f.String())
		}
		for cl := range tracer.NumClosers {
			counter(c.closedDesc, counts.Closed[cl], labels, cl.String())
		}
		ch <- prometheus.MustNewConstSummary(c.lifetimeDesc, counts.Lifetimes, float64(counts.LifetimeNanos)/1e9, nil, labels...)
	}
	for _, k := range inOrder {
		counts := inbound[k]
		labels := k[:]
		if !labelled {
			labels = k[1:]
		}
		counter(c.acceptedDesc, counts.Accepted, labels)
		for cl := range tracer.NumClosers {
			counter(c.inClosedDesc, counts.Closed[cl], labels, cl.String())
		}
		ch <- prometheus.MustNewConstSummary(c.inLifetimeDesc, counts.Lifetimes, float64(counts.LifetimeNanos)/1e9, nil, labels...)
	}
}

// ownerLabels names an owner as the sockets collector does: the unit or
// container of the cgroup, and the process.
func (c *ConnectionsCollector) ownerLabels(o tracer.Owner) (unit, process string) {
	unit, process = census.UnknownOwner.Unit, census.UnknownOwner.Process
	if o.Process != "" {
		process = o.Process
	}
	if c.sources.Owners != nil && o.Cgroup != 0 {
		unit = c.sources.Owners.Lookup(o.Cgroup, 0).Unit
	}
	return unit, process
}

// closerBook remembers, per namespace and destination, which owners the
// tracer saw closing connections first in the last 60 s, for the census to
// give the destination's TIME_WAIT sockets to: the side that closes first
// holds them. It is written by the connections collector and read by the
// sockets collectors, each of one namespace, during the same scrapes.
type closerBook struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[closerKey]*closerEntry
}

type closerKey struct {
	netns string
	dest  census.Destination
}

// closerEntry holds the owners that closed first toward one destination.
type closerEntry struct {
	owners [maxClosersPerDestination]closerCount
	n      int
}

type closerCount struct {
	owner  census.Owner
	closes uint64
	seen   time.Time
}

const (
	// maxCloserDestinations caps the destinations remembered; past it,
	// entries not updated for closerWindow are dropped to make room.
	maxCloserDestinations = 4096
	// maxClosersPerDestination caps the owners remembered per destination.
	maxClosersPerDestination = 4
	// closerWindow is how long a TIME_WAIT socket lasts (TCP_TIMEWAIT_LEN):
	// closes older than that left no TIME_WAIT.
	closerWindow = 60 * time.Second
)

func newCloserBook() *closerBook {
	return &closerBook{now: time.Now, entries: map[closerKey]*closerEntry{}}
}

// record notes that owner closed n connections first toward dest.
func (b *closerBook) record(netns string, dest census.Destination, owner census.Owner, n uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	key := closerKey{netns: netns, dest: dest}
	e, ok := b.entries[key]
	if !ok {
		if len(b.entries) >= maxCloserDestinations {
			b.prune(now)
			if len(b.entries) >= maxCloserDestinations {
				return
			}
		}
		e = &closerEntry{}
		b.entries[key] = e
	}
	oldest := 0
	for i := range e.n {
		c := &e.owners[i]
		if c.owner == owner {
			if now.Sub(c.seen) > closerWindow {
				c.closes = 0
			}
			c.closes += n
			c.seen = now
			return
		}
		if c.seen.Before(e.owners[oldest].seen) {
			oldest = i
		}
	}
	slot := e.n
	if e.n < len(e.owners) {
		e.n++
	} else {
		slot = oldest
	}
	e.owners[slot] = closerCount{owner: owner, closes: n, seen: now}
}

// prune drops the entries with no close in the window.
func (b *closerBook) prune(now time.Time) {
	for key, e := range b.entries {
		if _, ok := e.closer(now); !ok {
			delete(b.entries, key)
		}
	}
}

// closer returns the owner with the most closes in the window.
func (e *closerEntry) closer(now time.Time) (census.Owner, bool) {
	best := -1
	for i := range e.n {
		c := &e.owners[i]
		if now.Sub(c.seen) <= closerWindow && (best < 0 || c.closes > e.owners[best].closes) {
			best = i
		}
	}
	if best < 0 {
		return census.Owner{}, false
	}
	return e.owners[best].owner, true
}

// forNamespace returns the census.Closers of one namespace ("" when
// namespaces are not labelled).
func (b *closerBook) forNamespace(netns string) census.Closers {
	return namespaceClosers{book: b, netns: netns}
}

type namespaceClosers struct {
	book  *closerBook
	netns string
}

func (c namespaceClosers) Closer(d census.Destination) (census.Owner, bool) {
	c.book.mu.Lock()
	defer c.book.mu.Unlock()
	e, ok := c.book.entries[closerKey{netns: c.netns, dest: d}]
	if !ok {
		return census.Owner{}, false
	}
	return e.closer(c.book.now())
}
