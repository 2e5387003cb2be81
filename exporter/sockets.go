package exporter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
	"github.com/tcpadvisor/tcpadvisor/exporter/sockdiag"
	"golang.org/x/sys/unix"
)

// maxDumpAttempts bounds the retries of a dump that the kernel interrupted
// (NLM_F_DUMP_INTR) or could not queue (ENOBUFS).
const maxDumpAttempts = 3

// otherLabel is the label value of the series that sums everything past a cap.
const otherLabel = "other"

// OwnerResolver names who holds a socket, from its cgroup ID and inode:
// exporter/owners does it from cgroupfs and /proc.
type OwnerResolver interface {
	// Refresh brings the resolver's caches up to date, within a bounded
	// budget, before the lookups of a scrape.
	Refresh(ctx context.Context)
	// Lookup returns the owner of a socket without blocking.
	Lookup(cgroupID uint64, inode uint32) census.Owner
	// Runtime returns the language runtime of the processes of a name
	// ("go", "python", ...), or "" when unknown.
	Runtime(process string) string
}

// SocketsSources are where a SocketsCollector reads from.
type SocketsSources struct {
	// Dial opens a sock_diag socket in the network namespace to count.
	Dial func() (sockdiag.Conn, error)
	// Ephemeral reads that namespace's ephemeral port range.
	Ephemeral func() (census.EphemeralRange, error)
	// Owners, when set, attributes sockets to their owners.
	Owners OwnerResolver
	// Closers, when set with Owners, names who closed first toward each
	// destination (from the connection tracer), for the sockets no
	// process holds.
	Closers census.Closers
}

// SocketsCollector counts TCP sockets from sock_diag: by state, family and
// class, per outbound destination and per service port, and, with an
// OwnerResolver, per owner of each.
type SocketsCollector struct {
	sources SocketsSources

	// mu guards what is reused from one collection to the next: the
	// census, whose tables keep their capacity, and the sock_diag client,
	// whose socket and buffers are kept until a dump fails.
	mu      sync.Mutex
	census  *census.Census
	client  *sockdiag.Client
	retries uint64

	socketsDesc           *prometheus.Desc
	outboundDesc          *prometheus.Desc
	outboundEphemeralDesc *prometheus.Desc
	pressureDesc          *prometheus.Desc
	inboundDesc           *prometheus.Desc
	peersDesc             *prometheus.Desc
	peerSocketsDesc       *prometheus.Desc
	queueLengthDesc       *prometheus.Desc
	queueLimitDesc        *prometheus.Desc
	listenInRangeDesc     *prometheus.Desc
	inUseDesc             *prometheus.Desc
	listeningDesc         *prometheus.Desc
	limitReachedDesc      *prometheus.Desc
	retriesDesc           *prometheus.Desc
	outboundOwnerDesc     *prometheus.Desc
	inboundOwnerDesc      *prometheus.Desc
	listenOwnerDesc       *prometheus.Desc
	runtimeDesc           *prometheus.Desc
}

// NewSocketsCollector returns a collector that dumps sockets from sources,
// bounds its series by limits, and puts constLabels (the netns, or nothing)
// on every series.
func NewSocketsCollector(sources SocketsSources, limits census.Limits, constLabels prometheus.Labels) *SocketsCollector {
	destination := []string{"source_address", "destination_address", "destination_port"}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, constLabels)
	}
	return &SocketsCollector{
		sources: sources,
		census:  newCensus(sources, limits),

		socketsDesc: desc("sockets",
			"TCP sockets by address family, state and class: listener; inbound (local port is a listening port); outbound_ephemeral (local port from the ephemeral range); outbound_bound (other local port).",
			"family", "state", "class"),
		outboundDesc: desc("outbound_sockets",
			"Outbound TCP sockets by destination and state. The top destinations have their own series; the rest are summed into destination_address=\"other\".",
			append(destination, "state")...),
		outboundEphemeralDesc: desc("outbound_ephemeral_sockets",
			"Outbound TCP sockets, in any state, holding a port from the ephemeral range toward the destination.",
			destination...),
		pressureDesc: desc("outbound_port_pressure_ratio",
			"Ephemeral ports held toward the destination over the usable ephemeral ports (ip_local_port_range less ip_local_reserved_ports). At 1, connect() to it fails with EADDRNOTAVAIL.",
			destination...),
		inboundDesc: desc("inbound_sockets",
			"Inbound TCP sockets by local service port and state. Ports past the cap are summed into port=\"other\".",
			"port", "state"),
		peersDesc: desc("inbound_peer_addresses",
			"Distinct remote addresses with a socket on the service port.",
			"port"),
		peerSocketsDesc: desc("inbound_peer_sockets",
			"Sockets, in any state, from one of the busiest remote addresses of the service port (the top --collector.sockets.top-peers of each).",
			"port", "peer_address"),
		queueLengthDesc: desc("listen_queue_length",
			"Connections waiting in the accept queues of the port's listening sockets.",
			"port"),
		queueLimitDesc: desc("listen_queue_limit",
			"Accept-queue limit of the port's listening sockets, summed: min(listen() backlog, net.core.somaxconn) each.",
			"port"),
		listenInRangeDesc: desc("listen_port_in_ephemeral_range",
			"1 if the listening port lies in the ephemeral range and is not in ip_local_reserved_ports, so outgoing connections can take it.",
			"port"),
		inUseDesc: desc("ephemeral_ports_in_use",
			"Distinct ports of the ephemeral range held by outbound sockets."),
		listeningDesc: desc("ephemeral_ports_listening",
			"Listening ports inside the ephemeral range and not reserved."),
		limitReachedDesc: desc("sockets_tracking_limit_reached",
			"1 if a hard cap of the collector's internal tables was reached in this scrape: destinations (more were summed into other), peers (peer counts are lower bounds) or owners (more were counted as unknown).",
			"table"),
		retriesDesc: desc("sock_diag_dump_retries_total",
			"Dumps repeated because the kernel interrupted them (NLM_F_DUMP_INTR) or ran out of buffer (ENOBUFS)."),
		outboundOwnerDesc: desc("outbound_owner_sockets",
			"Outbound TCP sockets, in any state, toward a listed destination, by owner: the systemd unit or container (owner) and the process. The top --collector.sockets.top-owners of each destination have their own series, the rest are summed into owner=\"other\". TIME_WAIT sockets have no owner in the kernel: they are given to the owner that the connection tracer saw closing first toward the destination in the last 60 s, else to the owner that opened new connections to the same destination in this scrape, or in the last 60 s, else to owner=\"unknown\".",
			append(destination, "owner", "process")...),
		inboundOwnerDesc: desc("inbound_owner_sockets",
			"Inbound TCP sockets, in any state, on a listed service port, by owner (systemd unit or container) and process. TIME_WAIT and SYN_RECV sockets have no owner in the kernel: they are given to the owner of the port's listener, else to owner=\"unknown\".",
			"port", "owner", "process"),
		listenOwnerDesc: desc("listen_owner_info",
			"1 for the owner (systemd unit or container) and process of the listening socket of a listed service port: what serves there, the advisor's clue to its protocol.",
			"port", "owner", "process"),
		runtimeDesc: desc("owner_runtime_info",
			"1 for each process name of the owner series whose language runtime its executable tells: go (Go's build information), or an interpreter (python, java, node, ruby, php, perl) by the executable's name.",
			"process", "runtime"),
	}
}

func newCensus(sources SocketsSources, limits census.Limits) *census.Census {
	c := census.New(limits)
	if sources.Closers != nil {
		c.SetClosers(sources.Closers)
	}
	return c
}

// Update dumps the sockets and sends their counts.
func (c *SocketsCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	ephemeral, err := c.sources.Ephemeral()
	if err != nil {
		return err
	}
	if c.sources.Owners != nil {
		c.sources.Owners.Refresh(ctx)
	}
	for attempt := 1; ; attempt++ {
		if c.client == nil {
			conn, err := c.sources.Dial()
			if err != nil {
				return err
			}
			c.client = sockdiag.NewClient(conn)
			c.client.ReadCgroupIDs(c.sources.Owners != nil)
		}
		c.census.Reset(&ephemeral)
		err = c.dumpAll(ctx, c.client)
		if err == nil {
			break
		}
		if !errors.Is(err, sockdiag.ErrDumpInterrupted) {
			// An interrupted dump was read to its end; any other failure
			// may leave a dump half read in the socket: start afresh.
			c.client.Close()
			c.client = nil
		}
		if attempt == maxDumpAttempts || !(errors.Is(err, sockdiag.ErrDumpInterrupted) || errors.Is(err, unix.ENOBUFS)) {
			return err
		}
		c.retries++
	}
	c.send(ch, c.census.Result())
	return nil
}

// dumpAll feeds the census the listeners of both families first, then
// everything else: classifying a socket needs every listener. A LISTEN-only
// dump walks only the kernel's listening hash, not the established one.
func (c *SocketsCollector) dumpAll(ctx context.Context, client *sockdiag.Client) error {
	add := c.census.Add
	if owners := c.sources.Owners; owners != nil {
		add = func(s *sockdiag.Socket) {
			var owner census.Owner
			if s.Inode != 0 || s.CgroupID != 0 {
				owner = owners.Lookup(s.CgroupID, s.Inode)
			}
			c.census.AddOwned(s, owner)
		}
	}
	for _, states := range []sockdiag.StateSet{sockdiag.Only(sockdiag.Listen), sockdiag.AllStates.Without(sockdiag.Listen)} {
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			err := client.Dump(ctx, family, states, add)
			if family == unix.AF_INET6 && errors.Is(err, unix.ENOENT) {
				// No IPv6 in this kernel: no IPv6 sockets either.
				continue
			}
			if err != nil {
				return fmt.Errorf("dump %s sockets: %w", familyName(family), err)
			}
		}
	}
	return nil
}

func familyName(family uint8) string {
	if family == unix.AF_INET6 {
		return "IPv6"
	}
	return "IPv4"
}

func (c *SocketsCollector) send(ch chan<- prometheus.Metric, r census.Result) {
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	for _, family := range []census.Family{census.IPv4, census.IPv6} {
		for _, state := range sockdiag.States {
			if state == sockdiag.Listen {
				gauge(c.socketsDesc, float64(r.Sockets[family][state][census.Listener]), family.String(), state.String(), census.Listener.String())
				continue
			}
			for _, class := range census.Classes[1:] {
				gauge(c.socketsDesc, float64(r.Sockets[family][state][class]), family.String(), state.String(), class.String())
			}
		}
	}

	usable := float64(r.Ephemeral.Usable())
	for _, d := range r.Destinations {
		labels := []string{d.Source.String(), d.Address.String(), strconv.Itoa(int(d.Port))}
		c.sendOutboundStates(ch, &d.States, labels)
		gauge(c.outboundEphemeralDesc, float64(d.Ephemeral), labels...)
		if usable > 0 {
			gauge(c.pressureDesc, float64(d.Ephemeral)/usable, labels...)
		}
		for _, o := range d.Owners {
			gauge(c.outboundOwnerDesc, float64(o.Sockets), labels[0], labels[1], labels[2], o.Owner.Unit, o.Owner.Process)
		}
	}
	other := []string{otherLabel, otherLabel, otherLabel}
	c.sendOutboundStates(ch, &r.OtherDestinations.States, other)
	gauge(c.outboundEphemeralDesc, float64(r.OtherDestinations.Ephemeral), other...)

	for _, p := range r.ServicePorts {
		port := strconv.Itoa(int(p.Port))
		c.sendInboundStates(ch, &p.States, port)
		gauge(c.peersDesc, float64(p.Peers), port)
		for _, peer := range p.TopPeers {
			gauge(c.peerSocketsDesc, float64(peer.Sockets), port, peer.Address.String())
		}
		gauge(c.queueLengthDesc, float64(p.QueueLength), port)
		gauge(c.queueLimitDesc, float64(p.QueueLimit), port)
		gauge(c.listenInRangeDesc, boolValue(p.InEphemeralRange), port)
		for _, o := range p.Owners {
			gauge(c.inboundOwnerDesc, float64(o.Sockets), port, o.Owner.Unit, o.Owner.Process)
		}
		if o := p.ListenerOwner; o != (census.Owner{}) {
			gauge(c.listenOwnerDesc, 1, port, o.Unit, o.Process)
		}
	}
	c.sendInboundStates(ch, &r.OtherPorts.States, otherLabel)
	gauge(c.queueLengthDesc, float64(r.OtherPorts.QueueLength), otherLabel)
	gauge(c.queueLimitDesc, float64(r.OtherPorts.QueueLimit), otherLabel)

	gauge(c.inUseDesc, float64(r.EphemeralInUse))
	gauge(c.listeningDesc, float64(r.ListeningInEphemeralRange))
	gauge(c.limitReachedDesc, boolValue(r.DestinationsTruncated), "destinations")
	gauge(c.limitReachedDesc, boolValue(r.PeersTruncated), "peers")
	if c.sources.Owners != nil {
		gauge(c.limitReachedDesc, boolValue(r.OwnersTruncated), "owners")
		c.sendRuntimes(ch, r)
	}
	ch <- prometheus.MustNewConstMetric(c.retriesDesc, prometheus.CounterValue, float64(c.retries))
}

// sendRuntimes sends the runtime of each process named in the owner series.
func (c *SocketsCollector) sendRuntimes(ch chan<- prometheus.Metric, r census.Result) {
	processes := map[string]bool{}
	for _, d := range r.Destinations {
		for _, o := range d.Owners {
			processes[o.Owner.Process] = true
		}
	}
	for _, p := range r.ServicePorts {
		for _, o := range p.Owners {
			processes[o.Owner.Process] = true
		}
		if p.ListenerOwner != (census.Owner{}) {
			processes[p.ListenerOwner.Process] = true
		}
	}
	for process := range processes {
		if runtime := c.sources.Owners.Runtime(process); runtime != "" {
			ch <- prometheus.MustNewConstMetric(c.runtimeDesc, prometheus.GaugeValue, 1, process, runtime)
		}
	}
}

// outboundStates and inboundStates are the states a socket of each side can
// be in; each listed destination or port gets a series for every one of them,
// zeros included, so that rules can compare states without absent() guards.
var (
	outboundStates = []sockdiag.State{sockdiag.SynSent, sockdiag.Established, sockdiag.FinWait1, sockdiag.FinWait2, sockdiag.TimeWait, sockdiag.Close, sockdiag.CloseWait, sockdiag.LastAck, sockdiag.Closing}
	inboundStates  = []sockdiag.State{sockdiag.SynRecv, sockdiag.Established, sockdiag.FinWait1, sockdiag.FinWait2, sockdiag.TimeWait, sockdiag.Close, sockdiag.CloseWait, sockdiag.LastAck, sockdiag.Closing}
)

func (c *SocketsCollector) sendOutboundStates(ch chan<- prometheus.Metric, states *census.StateCounts, labels []string) {
	for _, s := range outboundStates {
		ch <- prometheus.MustNewConstMetric(c.outboundDesc, prometheus.GaugeValue, float64(states[s]), labels[0], labels[1], labels[2], s.String())
	}
}

func (c *SocketsCollector) sendInboundStates(ch chan<- prometheus.Metric, states *census.StateCounts, port string) {
	for _, s := range inboundStates {
		ch <- prometheus.MustNewConstMetric(c.inboundDesc, prometheus.GaugeValue, float64(states[s]), port, s.String())
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
