package advisor

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
)

// Source is where advice comes from: the active alerts of the rules, and
// queries over the samples they were evaluated on. *engine.Engine is one.
type Source interface {
	Alerts() []engine.Alert
	Query(ctx context.Context, expr string) ([]engine.Sample, error)
}

// A Source that evaluates the rules with their windows scaled
// (engine.Options.TimeScale) says so: the evidence then reads the same
// scaled windows as the rules, or it would contradict their summaries.
type timeScaler interface{ TimeScale() float64 }

// A Source that has not yet observed the rules' longest window says until
// when: before then, no advice does not mean nothing to change.
type warmer interface{ WarmUntil(now time.Time) time.Time }

// Advisor builds reports from a Source.
type Advisor struct {
	source Source
	logger *slog.Logger
}

// New returns an Advisor over source. Everything the advice quotes, the
// sysctls of each host and namespace included, comes from source's series.
func New(source Source, logger *slog.Logger) *Advisor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Advisor{source: source, logger: logger}
}

// Report turns the active alerts into advice: one per advice and target, the
// strongest (firing over pending, then critical over warning), and one per
// churning flow however many of its ends an alert sees.
func (a *Advisor) Report(ctx context.Context, now time.Time) Report {
	var all []Advice
	for _, alert := range a.source.Alerts() {
		all = append(all, a.advise(ctx, alert))
	}
	report := Report{GeneratedAt: now.UTC(), Advice: []Advice{}, Pending: []Advice{}}
	for _, adv := range strongest(all) {
		if adv.State == "firing" {
			report.Advice = append(report.Advice, adv)
		} else {
			report.Pending = append(report.Pending, adv)
		}
	}
	sortAdvice(report.Advice)
	sortAdvice(report.Pending)
	if w, ok := a.source.(warmer); ok {
		if until := w.WarmUntil(now); now.Before(until) {
			until = until.UTC()
			report.WarmingUp, report.WarmUntil = true, &until
		}
	}
	return report
}

// strongest keeps one advice per key: the stronger, with the evidence and
// alerts of the others it stands for.
func strongest(all []Advice) []Advice {
	best := map[string]int{}
	var kept []Advice
	for _, adv := range all {
		key := adviceKey(adv)
		i, seen := best[key]
		if !seen {
			best[key] = len(kept)
			kept = append(kept, adv)
			continue
		}
		winner, other := kept[i], adv
		if stronger(adv, kept[i]) {
			winner, other = adv, kept[i]
		}
		kept[i] = merge(winner, other)
	}
	return kept
}

// adviceKey is what makes two advices one: the same flow (flowKey) for
// churn advice, else the same advice and target.
func adviceKey(adv Advice) string {
	if adv.flowKey != "" {
		return adv.flowKey
	}
	return string(adv.ID) + "\x00" + fmt.Sprint(adv.Target) + "\x00" + fmt.Sprint(adv.Scope)
}

// merge returns winner with what other adds: the alerts it stands for,
// the evidence of the other end of the flow, and the ends other names.
func merge(winner, other Advice) Advice {
	for _, name := range other.Alerts {
		if !slices.Contains(winner.Alerts, name) {
			winner.Alerts = append(winner.Alerts, name)
		}
	}
	for _, e := range other.Evidence {
		if !slices.Contains(winner.Evidence, e) {
			winner.Evidence = append(winner.Evidence, e)
		}
	}
	if winner.Client == nil {
		winner.Client = other.Client
	}
	if winner.Server == nil || winner.Server.Owner == nil && other.Server != nil && other.Server.Owner != nil {
		winner.Server = other.Server
	}
	return winner
}

// stronger reports whether a should replace b: firing over pending, then
// critical over warning. Between the two views of one flow: the client's,
// whose configuration the fix changes, when the server's protocol is known;
// else the server's, since a server that closes every connection first is
// the signature of HTTP without keepalive, which the client's view alone
// cannot tell from a database.
func stronger(a, b Advice) bool {
	if a.State != b.State {
		return a.State == "firing"
	}
	if ra, rb := SeverityRank(a.Severity), SeverityRank(b.Severity); ra != rb {
		return ra > rb
	}
	_, aOut := a.Target["destination_port"]
	_, bOut := b.Target["destination_port"]
	if a.Server != nil && a.Server.Protocol == "" {
		return !aOut && bOut
	}
	return aOut && !bOut
}

// SeverityRank orders the severities of advice, for sorting it most severe
// first: critical ranks above warning, which ranks above any other.
func SeverityRank(s string) int {
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
		if n := cmp.Compare(SeverityRank(b.Severity), SeverityRank(a.Severity)); n != 0 {
			return n
		}
		if n := cmp.Compare(a.ID, b.ID); n != 0 {
			return n
		}
		if n := cmp.Compare(fmt.Sprint(a.Target), fmt.Sprint(b.Target)); n != 0 {
			return n
		}
		return cmp.Compare(fmt.Sprint(a.Scope), fmt.Sprint(b.Scope))
	})
}

// advise builds the advice of one alert.
func (a *Advisor) advise(ctx context.Context, alert engine.Alert) Advice {
	t := targetOf(alert.Labels)
	adv := Advice{
		ID:          ID(alert.Labels["advice"]),
		Alert:       alert.Name,
		Severity:    alert.Labels["severity"],
		State:       alert.State,
		Since:       alert.ActiveAt.UTC(),
		Target:      t.labels(),
		Scope:       maps.Clone(t.Scope),
		Summary:     alert.Annotations["summary"],
		Description: alert.Annotations["description"],
		RunbookURL:  alert.Annotations["runbook_url"],
		Evidence:    []Evidence{},
		Fixes:       []Fix{},
		Sysctls:     []SysctlChange{},
		Alerts:      []string{alert.Name},
	}
	if len(adv.Scope) == 0 {
		adv.Scope = nil
	}
	d, known := registry[adv.ID]
	if !known {
		// An advice ID from a user's own rules: the alert's words are all
		// there is.
		adv.Recommendation = adv.Description
		return adv
	}
	s := situation{target: t, facts: a.facts(ctx, t)}
	if d.owners != nil {
		s.owner = a.owner(ctx, t, d.owners(t), nil)
	} else if q, ok := ownersQuery(t); ok {
		s.owner = a.owner(ctx, t, q, nil)
		if s.owner == nil && t.Outbound() {
			// The tracer names the opener of connections too short-lived
			// for any sample to hold one.
			s.owner = a.owner(ctx, t, tracedOpeners(t), nil)
		}
		adv.Evidence = append(adv.Evidence, a.evidence(ctx, t, q)...)
	}
	adv.Owner = s.owner
	switch {
	case isChurn(adv.ID):
		d = a.churn(ctx, &adv, &s)
	case d.flow:
		a.nameEnds(ctx, &adv, &s)
	}
	evidence := a.evidence(ctx, t, d.evidence(t)...)
	adv.Evidence = append(evidence, adv.Evidence...)
	adv.Recommendation = d.recommendation(s)
	if d.fixes != nil {
		adv.Fixes = d.fixes(s)
	}
	if d.sysctls != nil {
		adv.Sysctls = d.sysctls(s)
		for _, c := range adv.Sysctls {
			adv.Fixes = append(adv.Fixes, Fix{Title: "sysctl " + c.Name, Language: "sysctl", Text: dropInLine(c)})
		}
	}
	return adv
}

// ownersQuery returns the query of the owners of the target's sockets:
// those toward its destination, or on its service port.
func ownersQuery(t Target) (evidenceQuery, bool) {
	switch {
	case t.Outbound():
		return evidenceQuery{name: "sockets held by", expr: "tcpadvisor_outbound_owner_sockets", match: t.destination(), by: "owner"}, true
	case t.Port != "":
		return evidenceQuery{name: "sockets held by", expr: "tcpadvisor_inbound_owner_sockets", match: t.port(), by: "owner"}, true
	}
	return evidenceQuery{}, false
}

// tracedOpeners is the query of the processes that opened connections
// toward the target's destination, as the connection tracer counted them.
func tracedOpeners(t Target) evidenceQuery {
	return evidenceQuery{expr: "tcpadvisor_outbound_connections_opened_total", match: t.destination()}
}

// query runs expr restricted to the target's scope and to match, its
// windows scaled as the rules' are, and returns the query it ran.
func (a *Advisor) query(ctx context.Context, t Target, expr string, match map[string]string) ([]engine.Sample, string, error) {
	matchers := maps.Clone(t.Scope)
	maps.Copy(matchers, match)
	q, err := engine.WithMatchers(expr, matchers)
	if err != nil {
		return nil, expr, err
	}
	if s, ok := a.source.(timeScaler); ok && s.TimeScale() != 1 {
		if q, err = engine.ScaleWindows(q, s.TimeScale()); err != nil {
			return nil, expr, err
		}
	}
	samples, err := a.source.Query(ctx, q)
	return samples, q, err
}

// evidence runs the queries and names their results.
func (a *Advisor) evidence(ctx context.Context, t Target, queries ...evidenceQuery) []Evidence {
	var out []Evidence
	for _, q := range queries {
		samples, expr, err := a.query(ctx, t, q.expr, q.match)
		if err != nil {
			a.logger.Warn("evidence query failed", "query", expr, "err", err)
			continue
		}
		slices.SortFunc(samples, func(x, y engine.Sample) int { return cmp.Compare(x.Labels[q.by], y.Labels[q.by]) })
		for _, s := range samples {
			name := q.name
			if q.by != "" {
				name += " " + s.Labels[q.by]
			}
			out = append(out, Evidence{Name: name, Value: s.Value, Query: expr})
		}
	}
	return out
}

// owner returns the busiest owner that q finds among the samples keep
// accepts (all when nil), other than "other" and than one whose unit and
// process are both unknown, with its
// runtime; or nil. An owner whose process is known wins over one whose
// process is not: the process of a short-lived connection's socket is often
// gone before the exporter looks, while its unit is known, and the process
// is what names a client. Owners are ranked by their most sockets at any
// sample of the last 5 minutes (scaled as the rules' windows), not at the
// last one alone: a client of connections that live a millisecond holds
// none at most samples.
func (a *Advisor) owner(ctx context.Context, t Target, q evidenceQuery, keep func(map[string]string) bool) *Owner {
	samples, expr, err := a.query(ctx, t, "max_over_time("+q.expr+"[5m])", q.match)
	if err != nil {
		a.logger.Warn("owner query failed", "query", expr, "err", err)
		return nil
	}
	var best *Owner
	for _, s := range samples {
		unit, process := s.Labels["owner"], s.Labels["process"]
		unknown := (unit == "unknown" || unit == "") && (process == "unknown" || process == "")
		if unknown || unit == "other" || s.Value == 0 || keep != nil && !keep(s.Labels) {
			continue
		}
		if best == nil || better(Owner{Owner: owners.Owner{Unit: unit, Process: process}, Sockets: s.Value}, *best) {
			best = &Owner{Owner: owners.Owner{Unit: unit, Process: process}, Sockets: s.Value}
		}
	}
	if best != nil {
		best.Runtime = a.runtime(ctx, t, best.Process)
	}
	return best
}

// better reports whether a is a better owner to name than b: a known
// process first, then a known unit (the tracer names a process before the
// cgroup of its socket is named), then the busier.
func better(a, b Owner) bool {
	if aKnown, bKnown := a.Process != "unknown", b.Process != "unknown"; aKnown != bKnown {
		return aKnown
	}
	if aKnown, bKnown := a.Unit != "unknown", b.Unit != "unknown"; aKnown != bKnown {
		return aKnown
	}
	return a.Sockets > b.Sockets || a.Sockets == b.Sockets && a.Unit < b.Unit
}

// runtime returns the language runtime the exporter found for the processes
// named process, or "".
func (a *Advisor) runtime(ctx context.Context, t Target, process string) string {
	samples, _, err := a.query(ctx, t, "tcpadvisor_owner_runtime_info", map[string]string{"process": process})
	if err != nil || len(samples) == 0 {
		return ""
	}
	return samples[0].Labels["runtime"]
}
