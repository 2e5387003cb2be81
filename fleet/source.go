package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
)

// notTargetLabels are the labels of an alert that say what, not where:
// they are never widened.
var notTargetLabels = []string{"alertname", "alertstate", "advice", "severity"}

// readAlerts returns the active alerts of the rules that carry an advice
// label: from the series ALERTS{advice!=""} (its alertstate) and
// ALERTS_FOR_STATE (since when), each read with topk, and the annotations
// from GET /api/v1/rules, the only place a server keeps them. A server that
// evaluates none of those rules is an error: "no advice" would be a lie.
func readAlerts(ctx context.Context, c *Client, logger *slog.Logger) ([]engine.Alert, error) {
	alertsExpr, err := c.bounded(`ALERTS{advice!=""}`)
	if err != nil {
		return nil, err
	}
	series, err := c.query(ctx, alertsExpr)
	if err != nil {
		return nil, err
	}
	rules, rulesErr := c.rules(ctx)
	if len(series) == 0 {
		if rulesErr != nil {
			return nil, fmt.Errorf("no ALERTS{advice!=\"\"} series, and the rules cannot be listed to tell why: %w", rulesErr)
		}
		if len(rules) == 0 {
			return nil, fmt.Errorf("--prometheus.url=%s evaluates none of tcpadvisor's rules (no alerting rule with an advice label): load rules/tcpadvisor.rules.yml there (rule_files), or point --prometheus.url at the server that does", c.url)
		}
		return nil, nil
	}
	if rulesErr != nil {
		logger.Warn("advice without the alerts' summaries: the server does not list its rules", "err", rulesErr)
	}
	activeAt := map[string]time.Time{}
	if forExpr, err := c.bounded(`ALERTS_FOR_STATE{advice!=""}`); err == nil {
		if states, err := c.query(ctx, forExpr); err == nil {
			for _, s := range states {
				activeAt[alertKey(s.Labels)] = time.Unix(int64(s.Value), 0)
			}
		} else {
			return nil, err
		}
	}
	annotated := map[string]*v1.Alert{}
	for _, r := range rules {
		for _, a := range r.Alerts {
			annotated[alertKey(labelMap(model.Metric(a.Labels)))] = a
		}
	}
	alerts := make([]engine.Alert, 0, len(series))
	for _, s := range series {
		key := alertKey(s.Labels)
		a := engine.Alert{
			Name:        s.Labels["alertname"],
			Labels:      withoutLabel(s.Labels, "alertstate", "__name__"),
			Annotations: map[string]string{},
			State:       s.Labels["alertstate"],
			ActiveAt:    activeAt[key],
		}
		if r, ok := annotated[key]; ok {
			for k, v := range r.Annotations {
				a.Annotations[string(k)] = string(v)
			}
			if a.ActiveAt.IsZero() {
				a.ActiveAt = r.ActiveAt
			}
			a.Value, _ = strconv.ParseFloat(r.Value, 64)
		}
		alerts = append(alerts, a)
	}
	return alerts, nil
}

// alertKey identifies an alert by its labels, without the ones that
// differ between ALERTS, ALERTS_FOR_STATE and the rules API.
func alertKey(labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	for _, k := range keys {
		if k == "__name__" || k == "alertstate" {
			continue
		}
		b.WriteString(k + "\x00" + labels[k] + "\x00")
	}
	return b.String()
}

func withoutLabel(labels map[string]string, names ...string) map[string]string {
	out := maps.Clone(labels)
	for _, n := range names {
		delete(out, n)
	}
	return out
}

// source is an advisor.Source over the server, for the alerts of one
// host: its queries, each about one alert's target, are widened to every
// alerting target and asked once for the whole fleet, then split back.
type source struct {
	client *Client
	// widen holds, for each label that says where, its values among all
	// the alerts.
	widen  map[string][]string
	logger *slog.Logger

	mu    sync.Mutex
	cache map[string]answer
}

type answer struct {
	samples []engine.Sample
	err     error
}

func newSource(c *Client, alerts []engine.Alert, logger *slog.Logger) *source {
	widen := map[string][]string{}
	for _, a := range alerts {
		for k, v := range a.Labels {
			if !slices.Contains(notTargetLabels, k) && !slices.Contains(widen[k], v) {
				widen[k] = append(widen[k], v)
			}
		}
	}
	return &source{client: c, widen: widen, logger: logger, cache: map[string]answer{}}
}

// Query answers expr from the widened query's answer, asking the server
// the first time only.
func (s *source) Query(ctx context.Context, expr string) ([]engine.Sample, error) {
	wide, ok, err := engine.Widen(expr, s.widen)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	got, seen := s.cache[wide.Expr]
	if !seen && !ok {
		s.logger.Debug("query asked for one target", "query", expr)
	}
	if !seen {
		got.samples, got.err = s.client.query(ctx, wide.Expr)
		s.cache[wide.Expr] = got
	}
	if got.err != nil || !ok {
		return got.samples, got.err
	}
	var out []engine.Sample
	for _, sample := range got.samples {
		if matches(sample.Labels, wide.Want) {
			out = append(out, engine.Sample{Labels: withoutLabel(sample.Labels, wide.Added...), Value: sample.Value})
		}
	}
	return out, nil
}

// matches reports whether labels hold every label of want; a label absent
// is the empty value, as in a matcher.
func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// hostSource is the source as one host's daemon would be: its alerts only.
type hostSource struct {
	*source
	alerts []engine.Alert
}

// Alerts returns the host's alerts.
func (h hostSource) Alerts() []engine.Alert { return h.alerts }
