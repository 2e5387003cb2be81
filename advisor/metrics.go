package advisor

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// adviceLabels are the labels of tcpadvisor_advice_active: a fixed set, so
// that a dashboard can rely on them; a label the advice's target does not
// have is "". Its values are bounded by the rules' own series (the
// exporter's capped destinations and ports), one series per advice.
var adviceLabels = []string{"advice", "alertname", "severity", "state", "netns",
	"source_address", "destination_address", "destination_port", "port"}

// collectTimeout bounds the queries of one scrape of the advice.
const collectTimeout = 10 * time.Second

// Collector exports the advisor's current advice as metrics, for a
// Prometheus that scrapes the daemon without loading its rules: one series
// per advice, firing or pending, with the value 1.
type Collector struct {
	advisor *Advisor
	desc    *prometheus.Desc
}

// NewCollector returns a Collector of the advice of a. The daemon registers
// it on the registry it serves, not on the one its engine samples: the
// rules must not read their own advice.
func NewCollector(a *Advisor) *Collector {
	return &Collector{advisor: a, desc: prometheus.NewDesc("tcpadvisor_advice_active",
		"1 for each advice the daemon gives now (state firing or pending), by advice ID, the alert that raised it, its severity, and where: netns, source_address, destination_address and destination_port, or port (\"\" where the advice has none).",
		adviceLabels, nil)}
}

// Describe sends the one descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect builds the report of now and sends a series per advice. Two
// advices that differ only in labels outside the set (a fleet's instances)
// give one series, the stronger's.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	r := c.advisor.Report(ctx, time.Now())
	seen := map[string]bool{}
	for _, adv := range append(r.Advice, r.Pending...) {
		values := []string{string(adv.ID), adv.Alert, adv.Severity, adv.State, adv.Target["netns"],
			adv.Target["source_address"], adv.Target["destination_address"], adv.Target["destination_port"], adv.Target["port"]}
		key := strings.Join(values, "\x00")
		if seen[key] {
			continue
		}
		seen[key] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, values...)
	}
}
