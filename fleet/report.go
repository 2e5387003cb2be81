package fleet

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
)

// JoinWindow is how far back the server ends of flows are looked for: a
// connection per request lives for milliseconds on the server, so a single
// scrape rarely sees it; the busiest peers of five minutes of scrapes do.
const JoinWindow = 5 * time.Minute

// Report is the advice of a fleet at one moment. It holds the daemon's
// advice values, each with the host it is about; its JSON form is a
// public API: add fields, never rename or remove them.
type Report struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Prometheus is the URL of the server asked.
	Prometheus string `json:"prometheus_url"`
	// Match is the --match selector, if any.
	Match string `json:"match,omitempty"`
	// Advice holds the firing advice, most severe and most pressing first.
	Advice []Advice `json:"advice"`
	// Pending holds the advice whose condition holds, not yet for as long
	// as its rule asks.
	Pending []Advice `json:"pending"`
	// Truncated says that a query read as many series as --limit allows:
	// there may be more advice than shown.
	Truncated bool `json:"truncated"`
	// Cost is what building the report asked of the server.
	Cost Cost `json:"cost"`
}

// Advice is the daemon's advice about one host, with where it comes from
// and, when the other end of the flow is a scraped host too, that end.
type Advice struct {
	advisor.Advice
	// Instance and Job are the labels of the host the advice is about.
	Instance string `json:"instance"`
	Job      string `json:"job"`
	// Pressure is the share of the usable ephemeral ports held toward the
	// destination (tcpadvisor_outbound_port_pressure_ratio), for advice
	// about a destination.
	Pressure float64 `json:"pressure"`
	// Server is the scraped host that listens at the destination, when
	// one is found: the two views of the flow are then this one advice.
	Server *Endpoint `json:"server,omitempty"`
}

// Endpoint is the server end of a flow, as its own host's exporter sees it.
type Endpoint struct {
	Instance string `json:"instance"`
	Job      string `json:"job"`
	// Netns is the server's network namespace, with --collector.netns.
	Netns string `json:"netns,omitempty"`
	Port  string `json:"port"`
	// Owner is the listening process, by the sockets of the port.
	Owner *advisor.Owner `json:"owner,omitempty"`
	// Advice is the server host's own advice about the port, folded into
	// this one, if it had one.
	Advice *advisor.Advice `json:"advice,omitempty"`
}

// Build reads the fleet's alerts and builds its advice, as the daemon of
// each host would, then joins the ends of flows.
func Build(ctx context.Context, c *Client, now time.Time, logger *slog.Logger) (Report, error) {
	report := Report{GeneratedAt: now.UTC(), Prometheus: c.url, Match: c.match, Advice: []Advice{}, Pending: []Advice{}}
	alerts, err := readAlerts(ctx, c, logger)
	if err != nil {
		return report, err
	}
	report.Truncated = len(alerts) >= c.limit
	src := newSource(c, alerts, logger)
	hosts := map[[2]string][]engine.Alert{}
	for _, a := range alerts {
		key := [2]string{a.Labels["instance"], a.Labels["job"]}
		hosts[key] = append(hosts[key], a)
	}
	keys := slices.SortedFunc(maps.Keys(hosts), func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	var all []Advice
	// The advisor logs each evidence query that fails; past the deadline
	// they all fail, and the one line below says why.
	held := &heldLogs{next: logger.Handler()}
	for _, key := range keys {
		r := advisor.New(hostSource{src, hosts[key]}, slog.New(held)).Report(ctx, now)
		for _, list := range [][]advisor.Advice{r.Advice, r.Pending} {
			for _, adv := range list {
				all = append(all, Advice{Advice: adv, Instance: key[0], Job: key[1]})
			}
		}
	}
	// A deadline hit while the advisor asked for evidence leaves advice
	// without it: an error, not a quieter report.
	if err := ctx.Err(); err != nil {
		return report, c.explain(ctx, err, "the evidence queries")
	}
	held.release(ctx)
	if len(all) > 0 {
		if err := addPressure(ctx, c, all); err != nil {
			return report, err
		}
		if all, err = join(ctx, c, all); err != nil {
			return report, err
		}
	}
	for _, adv := range all {
		if adv.State == "firing" {
			report.Advice = append(report.Advice, adv)
		} else {
			report.Pending = append(report.Pending, adv)
		}
	}
	rank(report.Advice)
	rank(report.Pending)
	report.Cost = c.Cost()
	return report, nil
}

// heldLogs keeps log records until release passes them on.
type heldLogs struct {
	next    slog.Handler
	records []slog.Record
}

func (h *heldLogs) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *heldLogs) Handle(_ context.Context, r slog.Record) error {
	h.records = append(h.records, r.Clone())
	return nil
}

// WithAttrs and WithGroup are not used by the advisor, whose logger has
// neither; they hand the records on at once.
func (h *heldLogs) WithAttrs(attrs []slog.Attr) slog.Handler { return h.next.WithAttrs(attrs) }
func (h *heldLogs) WithGroup(name string) slog.Handler       { return h.next.WithGroup(name) }

func (h *heldLogs) release(ctx context.Context) {
	for _, r := range h.records {
		h.next.Handle(ctx, r)
	}
	h.records = nil
}

// rank orders advice by severity, then port pressure, then host.
func rank(list []Advice) {
	slices.SortStableFunc(list, func(a, b Advice) int {
		if n := cmp.Compare(advisor.SeverityRank(b.Severity), advisor.SeverityRank(a.Severity)); n != 0 {
			return n
		}
		if n := cmp.Compare(b.Pressure, a.Pressure); n != 0 {
			return n
		}
		if n := cmp.Compare(a.ID, b.ID); n != 0 {
			return n
		}
		return cmp.Compare(a.Instance, b.Instance)
	})
}

// regexOf returns a regular expression matching exactly the values.
func regexOf(values []string) string {
	quoted := make([]string, 0, len(values))
	for _, v := range values {
		quoted = append(quoted, regexp.QuoteMeta(v))
	}
	slices.Sort(quoted)
	return strings.Join(slices.Compact(quoted), "|")
}

// addPressure sets the port pressure of every advice about a destination,
// from one query over the hosts with advice.
func addPressure(ctx context.Context, c *Client, all []Advice) error {
	var instances []string
	for _, a := range all {
		if a.Target["destination_address"] != "" {
			instances = append(instances, a.Instance)
		}
	}
	if len(instances) == 0 {
		return nil
	}
	expr, err := c.bounded(fmt.Sprintf(`tcpadvisor_outbound_port_pressure_ratio{instance=~%q}`, regexOf(instances)))
	if err != nil {
		return err
	}
	samples, err := c.query(ctx, expr)
	if err != nil {
		return err
	}
	for i := range all {
		for _, s := range samples {
			if s.Labels["instance"] == all[i].Instance && sameDestination(s.Labels, all[i].Target) {
				all[i].Pressure = max(all[i].Pressure, s.Value)
			}
		}
	}
	return nil
}

func sameDestination(labels, target map[string]string) bool {
	for _, k := range []string{"source_address", "destination_address", "destination_port", "netns"} {
		if labels[k] != target[k] {
			return false
		}
	}
	return true
}

// join finds, for every advice about a destination on another host, the
// scraped host that listens there, and makes the two views one advice.
//
// The server is the host (instance and netns) whose exporter has the
// destination address among its interfaces' (tcpadvisor_local_address_info)
// and listens on the destination port (tcpadvisor_listen_queue_limit). Where
// no host has the address (its exporter predates the metric, or the
// client dials a NAT or service address), or several do, the server is
// the one that saw the client's source address among the busiest peers of
// the port (tcpadvisor_inbound_peer_sockets) in the last JoinWindow. The
// listening process is the busiest owner of the port's sockets in that
// window (tcpadvisor_inbound_owner_sockets). An advice of the server host
// about that port (the server's view of the same churn) is folded in.
func join(ctx context.Context, c *Client, all []Advice) ([]Advice, error) {
	var sources, destinations, ports []string
	for _, a := range all {
		if remoteDestination(a) {
			sources = append(sources, a.Target["source_address"])
			destinations = append(destinations, a.Target["destination_address"])
			ports = append(ports, a.Target["destination_port"])
		}
	}
	if len(sources) == 0 {
		return all, nil
	}
	ask := func(format string, args ...any) ([]engine.Sample, error) {
		expr, err := c.bounded(fmt.Sprintf(format, args...))
		if err != nil {
			return nil, err
		}
		return c.query(ctx, expr)
	}
	window := promDuration(JoinWindow)
	// The hosts that have the addresses, then those of them that listen
	// on the ports.
	addresses, err := ask(`tcpadvisor_local_address_info{address=~%q}`, regexOf(destinations))
	if err != nil {
		return nil, err
	}
	var listening []engine.Sample
	if len(addresses) > 0 {
		var hosts []string
		for _, s := range addresses {
			hosts = append(hosts, s.Labels["instance"])
		}
		listens, err := ask(`tcpadvisor_listen_queue_limit{instance=~%q,port=~%q}`, regexOf(hosts), regexOf(ports))
		if err != nil {
			return nil, err
		}
		for _, addr := range addresses {
			for _, l := range listens {
				if l.Labels["instance"] == addr.Labels["instance"] && l.Labels["job"] == addr.Labels["job"] && l.Labels["netns"] == addr.Labels["netns"] {
					labels := maps.Clone(l.Labels)
					labels["address"] = addr.Labels["address"]
					listening = append(listening, engine.Sample{Labels: labels, Value: 1})
				}
			}
		}
	}
	// The peers are asked once, and only if an advice needs them.
	var peers []engine.Sample
	var peersErr error
	peersAsked := false
	servers, err := findServers(all, listening, func() ([]engine.Sample, error) {
		if !peersAsked {
			peersAsked = true
			peers, peersErr = ask(`max_over_time(tcpadvisor_inbound_peer_sockets{peer_address=~%q,port=~%q}[%s])`, regexOf(sources), regexOf(ports), window)
		}
		return peers, peersErr
	})
	if err != nil || len(servers) == 0 {
		return all, err
	}
	var serverInstances []string
	for _, s := range servers {
		serverInstances = append(serverInstances, s.Labels["instance"])
	}
	owners, err := ask(`max_over_time(tcpadvisor_inbound_owner_sockets{instance=~%q,port=~%q}[%s])`, regexOf(serverInstances), regexOf(ports), window)
	if err != nil {
		return nil, err
	}
	return fold(all, servers, owners), nil
}

// findServers returns, by the index of the advice in all, the server end
// of each advice about a remote destination that has exactly one: the host
// of listening (series with the address and the port it listens on) that
// has the destination, else, when none or several do, the one of those (or
// of all) whose busiest peers, from peers, hold the client's address.
func findServers(all []Advice, listening []engine.Sample, peers func() ([]engine.Sample, error)) (map[int]engine.Sample, error) {
	servers := map[int]engine.Sample{}
	for i, a := range all {
		if !remoteDestination(a) {
			continue
		}
		var candidates []engine.Sample
		for _, l := range listening {
			if l.Labels["address"] == a.Target["destination_address"] && l.Labels["port"] == a.Target["destination_port"] {
				candidates = append(candidates, l)
			}
		}
		if slices.ContainsFunc(candidates, func(l engine.Sample) bool { return sameHost(l.Labels, a) }) {
			continue // the destination is on the client's own host
		}
		if len(candidates) != 1 {
			seen, err := peers()
			if err != nil {
				return nil, err
			}
			candidates = sawPeer(candidates, seen, a)
		}
		if len(candidates) == 1 {
			servers[i] = candidates[0]
		}
	}
	return servers, nil
}

// fold names the server end of each advice of servers, with its listening
// process from owners, and folds the server host's own advice about the
// port into it.
func fold(all []Advice, servers map[int]engine.Sample, owners []engine.Sample) []Advice {
	folded := map[int]bool{}
	for _, i := range slices.Sorted(maps.Keys(servers)) {
		server := servers[i]
		a := &all[i]
		end := &Endpoint{Instance: server.Labels["instance"], Job: server.Labels["job"], Netns: server.Labels["netns"], Port: a.Target["destination_port"]}
		end.Owner = busiestOwner(owners, end)
		for j, b := range all {
			if b.Instance == end.Instance && b.Job == end.Job && b.Target["netns"] == end.Netns && b.Target["port"] == end.Port && !folded[j] {
				folded[j] = true
				serverAdvice := b.Advice
				end.Advice = &serverAdvice
				for _, e := range b.Evidence {
					e.Name = hostOf(end.Instance) + ": " + e.Name
					a.Evidence = append(a.Evidence, e)
				}
				if advisor.SeverityRank(b.Severity) > advisor.SeverityRank(a.Severity) {
					a.Severity = b.Severity
				}
			}
		}
		a.Server = end
		a.Summary = flowSentence(*a)
	}
	kept := all[:0]
	for j, a := range all {
		if !folded[j] {
			kept = append(kept, a)
		}
	}
	return kept
}

// sameHost reports whether the series is of the advice's own host.
func sameHost(labels map[string]string, a Advice) bool {
	return labels["instance"] == a.Instance && labels["job"] == a.Job && labels["netns"] == a.Target["netns"]
}

// sawPeer returns the hosts, among candidates when there are any, else
// among all, that saw the advice's source address on its destination port:
// the server's own view of the client.
func sawPeer(candidates, peers []engine.Sample, a Advice) []engine.Sample {
	var out []engine.Sample
	for _, p := range peers {
		if sameHost(p.Labels, a) || p.Labels["peer_address"] != a.Target["source_address"] || p.Labels["port"] != a.Target["destination_port"] {
			continue
		}
		if len(candidates) == 0 || slices.ContainsFunc(candidates, func(c engine.Sample) bool {
			return c.Labels["instance"] == p.Labels["instance"] && c.Labels["job"] == p.Labels["job"] && c.Labels["netns"] == p.Labels["netns"]
		}) {
			out = append(out, p)
		}
	}
	return out
}

// remoteDestination reports whether the advice is about a destination
// that can be another host: not loopback, not the sum of the rest.
func remoteDestination(a Advice) bool {
	d := a.Target["destination_address"]
	addr, err := netip.ParseAddr(d)
	return err == nil && !addr.IsLoopback() && !addr.IsUnspecified() && a.Target["source_address"] != ""
}

// busiestOwner returns the owner with the most sockets on the endpoint's
// port, other than "unknown" and "other", or nil.
func busiestOwner(samples []engine.Sample, end *Endpoint) *advisor.Owner {
	var best *advisor.Owner
	for _, s := range samples {
		unit, process := s.Labels["owner"], s.Labels["process"]
		if s.Labels["instance"] != end.Instance || s.Labels["job"] != end.Job || s.Labels["netns"] != end.Netns || s.Labels["port"] != end.Port ||
			unit == "unknown" || unit == "other" || s.Value == 0 {
			continue
		}
		if best == nil || s.Value > best.Sockets || s.Value == best.Sockets && unit < best.Unit {
			best = &advisor.Owner{Owner: owners.Owner{Unit: unit, Process: process}, Sockets: s.Value}
		}
	}
	return best
}

// flowSentence says what a joined advice is about, naming both ends:
// "app-1 (gunicorn) opens a connection per request to redis-1:6379
// (redis-server)".
func flowSentence(a Advice) string {
	client := hostOf(a.Instance)
	if a.Owner != nil {
		client += " (" + a.Owner.Process + ")"
	}
	server := net.JoinHostPort(hostOf(a.Server.Instance), a.Server.Port)
	if a.Server.Owner != nil {
		server += " (" + a.Server.Owner.Process + ")"
	}
	what := "opens a connection per request to"
	if a.ID == advisor.UpstreamKeepalive {
		what = "opens an HTTP connection per request to"
	} else if a.ID == advisor.PortPressure {
		what = fmt.Sprintf("holds %.0f%% of its ephemeral ports toward", 100*a.Pressure)
	}
	return fmt.Sprintf("%s %s %s", client, what, server)
}

// hostOf returns the host of an instance label "host:port", or the label.
func hostOf(instance string) string {
	if host, _, err := net.SplitHostPort(instance); err == nil {
		return host
	}
	return instance
}

// promDuration writes d as PromQL does: "5m", "30s".
func promDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}
