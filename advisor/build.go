package advisor

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/exporter/census"
)

// Source is where advice comes from: the active alerts of the rules, and
// queries over the samples they were evaluated on.
type Source interface {
	Alerts() []engine.Alert
	Query(ctx context.Context, expr string) ([]engine.Sample, error)
}

// Advisor builds reports from a Source.
type Advisor struct {
	source Source
	// readSysctl reads a sysctl of the host, by its dotted name: the
	// reserved-port list is the one value the metrics do not carry.
	readSysctl func(name string) (string, error)
	logger     *slog.Logger
}

// New returns an Advisor over source; readSysctl reads the current value of
// a sysctl of the host the advice is about.
func New(source Source, readSysctl func(name string) (string, error), logger *slog.Logger) *Advisor {
	return &Advisor{source: source, readSysctl: readSysctl, logger: logger}
}

// labelsNotTarget are the alert labels that do not say where.
var labelsNotTarget = []string{"alertname", "advice", "severity", "instance", "job"}

// Report turns the active alerts into advice: one per advice ID and target,
// the strongest (firing over pending, then critical over warning).
func (a *Advisor) Report(ctx context.Context, now time.Time) Report {
	best := map[string]Advice{}
	var keys []string
	for _, alert := range a.source.Alerts() {
		adv := a.advise(ctx, alert)
		key := string(adv.ID) + "\x00" + fmt.Sprint(adv.Target) + "\x00" + alert.Labels["instance"]
		prev, seen := best[key]
		if !seen {
			keys = append(keys, key)
		}
		if !seen || stronger(adv, prev) {
			best[key] = adv
		}
	}
	report := Report{GeneratedAt: now.UTC(), Advice: []Advice{}, Pending: []Advice{}}
	for _, key := range keys {
		if adv := best[key]; adv.State == "firing" {
			report.Advice = append(report.Advice, adv)
		} else {
			report.Pending = append(report.Pending, adv)
		}
	}
	sortAdvice(report.Advice)
	sortAdvice(report.Pending)
	return report
}

// stronger reports whether a should replace b: firing over pending, then
// critical over warning.
func stronger(a, b Advice) bool {
	if a.State != b.State {
		return a.State == "firing"
	}
	return severityRank(a.Severity) > severityRank(b.Severity)
}

func severityRank(s string) int {
	switch s {
	case "critical":
		return 2
	case "warning":
		return 1
	}
	return 0
}

func sortAdvice(list []Advice) {
	slices.SortStableFunc(list, func(a, b Advice) int {
		if n := cmp.Compare(severityRank(b.Severity), severityRank(a.Severity)); n != 0 {
			return n
		}
		if n := cmp.Compare(a.ID, b.ID); n != 0 {
			return n
		}
		return cmp.Compare(fmt.Sprint(a.Target), fmt.Sprint(b.Target))
	})
}

// advise builds the advice of one alert.
func (a *Advisor) advise(ctx context.Context, alert engine.Alert) Advice {
	t := target{}
	for k, v := range alert.Labels {
		if !slices.Contains(labelsNotTarget, k) {
			t[k] = v
		}
	}
	since := alert.ActiveAt
	adv := Advice{
		ID:          ID(alert.Labels["advice"]),
		Alert:       alert.Name,
		Severity:    alert.Labels["severity"],
		State:       alert.State,
		Since:       since.UTC(),
		Target:      maps.Clone(t),
		Summary:     alert.Annotations["summary"],
		Description: alert.Annotations["description"],
		RunbookURL:  alert.Annotations["runbook_url"],
		Evidence:    []Evidence{},
		Fixes:       []Fix{},
		Sysctls:     []SysctlChange{},
	}
	e, known := catalog[adv.ID]
	if !known {
		// An advice ID from a user's own rules: the alert's words are all
		// there is.
		adv.Recommendation = adv.Description
		return adv
	}
	scope := scopeOf(alert.Labels)
	for _, q := range e.evidence(t) {
		adv.Evidence = append(adv.Evidence, a.evidence(ctx, q, scope)...)
	}
	if q, ok := t.ownersQuery(); ok {
		adv.Owner = a.owner(ctx, scoped(q, scope))
		if adv.Owner != nil {
			adv.Owner.Runtime = a.runtime(ctx, adv.Owner.Process, scope)
		}
		adv.Evidence = append(adv.Evidence, a.evidence(ctx, evidenceQuery{name: "sockets held by", expr: q, by: "owner"}, scope)...)
	}
	f := a.facts(ctx, scope)
	f.owner = adv.Owner
	adv.Recommendation = e.recommendation(t, f)
	if e.fixes != nil {
		adv.Fixes = e.fixes(t, f)
	}
	if e.sysctls != nil {
		adv.Sysctls = e.sysctls(t, f)
		for _, s := range adv.Sysctls {
			adv.Fixes = append(adv.Fixes, Fix{Title: "sysctl " + s.Name, Language: "sysctl", Text: dropInLine(s)})
		}
	}
	return adv
}

// scopeOf returns the matchers that keep queries to the alert's own target,
// where the samples carry instance and job labels.
func scopeOf(labels map[string]string) string {
	var m []string
	for _, n := range []string{"instance", "job"} {
		if v, ok := labels[n]; ok {
			m = append(m, fmt.Sprintf("%s=%q", n, v))
		}
	}
	return strings.Join(m, ",")
}

// scoped adds the scope's matchers to every selector of a simple
// expression: the evidence queries are plain selectors, ratios of two, or
// rate() of one.
func scoped(expr, scope string) string {
	if scope == "" {
		return expr
	}
	var b strings.Builder
	for i := 0; i < len(expr); {
		j := strings.Index(expr[i:], "tcpadvisor_")
		if j < 0 {
			b.WriteString(expr[i:])
			break
		}
		b.WriteString(expr[i : i+j])
		i += j
		end := i
		for end < len(expr) && (expr[end] == '_' || expr[end] >= 'a' && expr[end] <= 'z' || expr[end] >= '0' && expr[end] <= '9') {
			end++
		}
		b.WriteString(expr[i:end])
		if end < len(expr) && expr[end] == '{' {
			b.WriteString("{" + scope + ",")
			end++
		} else {
			b.WriteString("{" + scope + "}")
		}
		i = end
	}
	return b.String()
}

func (a *Advisor) evidence(ctx context.Context, q evidenceQuery, scope string) []Evidence {
	expr := scoped(q.expr, scope)
	samples, err := a.source.Query(ctx, expr)
	if err != nil {
		a.logger.Warn("evidence query failed", "query", expr, "err", err)
		return nil
	}
	slices.SortFunc(samples, func(x, y engine.Sample) int { return cmp.Compare(x.Labels[q.by], y.Labels[q.by]) })
	var out []Evidence
	for _, s := range samples {
		name := q.name
		if q.by != "" {
			name += " " + s.Labels[q.by]
		}
		out = append(out, Evidence{Name: name, Value: s.Value, Query: expr})
	}
	return out
}

// owner returns the busiest owner that query finds, other than "unknown"
// and "other", or nil.
func (a *Advisor) owner(ctx context.Context, query string) *Owner {
	samples, err := a.source.Query(ctx, query)
	if err != nil {
		a.logger.Warn("owner query failed", "query", query, "err", err)
		return nil
	}
	var best *Owner
	for _, s := range samples {
		unit, process := s.Labels["owner"], s.Labels["process"]
		if unit == "unknown" || unit == "other" || s.Value == 0 {
			continue
		}
		if best == nil || s.Value > best.Sockets || s.Value == best.Sockets && unit < best.Unit {
			best = &Owner{Unit: unit, Process: process, Sockets: s.Value}
		}
	}
	return best
}

// runtime returns the language runtime the exporter found for the processes
// named process, or "".
func (a *Advisor) runtime(ctx context.Context, process, scope string) string {
	samples, err := a.source.Query(ctx, scoped(fmt.Sprintf("tcpadvisor_owner_runtime_info{process=%q}", process), scope))
	if err != nil || len(samples) == 0 {
		return ""
	}
	return samples[0].Labels["runtime"]
}

// facts are the host's settings the fixes depend on, and who owns the
// sockets.
type facts struct {
	owner                     *Owner
	twReuse, timestamps       int
	rangeMin, rangeMax        int
	reservedPorts             string
	listeningPorts            []int
	maxTwBuckets, somaxconn   int
	maxSynBacklog, maxOrphans int
	conntrackMax              int
}

func (a *Advisor) facts(ctx context.Context, scope string) facts {
	value := func(metric string) int {
		samples, err := a.source.Query(ctx, scoped(metric, scope))
		if err != nil || len(samples) == 0 {
			return -1
		}
		return int(samples[0].Value)
	}
	f := facts{
		twReuse:       value("tcpadvisor_sysctl_net_ipv4_tcp_tw_reuse"),
		timestamps:    value("tcpadvisor_sysctl_net_ipv4_tcp_timestamps"),
		rangeMin:      value("tcpadvisor_sysctl_net_ipv4_ip_local_port_range_min"),
		rangeMax:      value("tcpadvisor_sysctl_net_ipv4_ip_local_port_range_max"),
		maxTwBuckets:  value("tcpadvisor_sysctl_net_ipv4_tcp_max_tw_buckets"),
		somaxconn:     value("tcpadvisor_sysctl_net_core_somaxconn"),
		maxSynBacklog: value("tcpadvisor_sysctl_net_ipv4_tcp_max_syn_backlog"),
		maxOrphans:    value("tcpadvisor_sysctl_net_ipv4_tcp_max_orphans"),
		conntrackMax:  value("tcpadvisor_conntrack_entries_limit"),
	}
	if reserved, err := a.readSysctl("net.ipv4.ip_local_reserved_ports"); err == nil {
		f.reservedPorts = strings.TrimSpace(reserved)
	}
	if samples, err := a.source.Query(ctx, scoped("tcpadvisor_listen_queue_limit", scope)); err == nil {
		for _, s := range samples {
			if p, err := strconv.Atoi(s.Labels["port"]); err == nil {
				f.listeningPorts = append(f.listeningPorts, p)
			}
		}
		slices.Sort(f.listeningPorts)
	}
	return f
}

// listeningIn returns the listening ports in [low, high].
func (f facts) listeningIn(low, high int) []int {
	var in []int
	for _, p := range f.listeningPorts {
		if p >= low && p <= high {
			in = append(in, p)
		}
	}
	return in
}

// reservedWith returns the reserved-port list with ports added, in the
// kernel's own compact form ("8080,9000-9010").
func (f facts) reservedWith(ports ...int) string {
	set, err := census.ParseReservedPorts(f.reservedPorts)
	if err != nil {
		set = census.PortSet{}
	}
	for _, p := range ports {
		set.Add(uint16(p))
	}
	var parts []string
	for p := 0; p < 1<<16; p++ {
		if !set.Has(uint16(p)) {
			continue
		}
		end := p
		for end+1 < 1<<16 && set.Has(uint16(end+1)) {
			end++
		}
		if end == p {
			parts = append(parts, strconv.Itoa(p))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", p, end))
		}
		p = end
	}
	return strings.Join(parts, ",")
}
