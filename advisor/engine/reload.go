package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// reloadMetrics export the outcome of the last Reload under the names
// Prometheus gives its configuration reloads, so that prometheus-mixin's
// PrometheusBadConfig alert applies with job="tcpadvisor".
type reloadMetrics struct {
	successful  prometheus.Gauge
	successTime prometheus.Gauge
}

// newReloadMetrics registers the metrics on reg when it is not nil. The
// rules loaded at start count as the first successful load.
func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prometheus_config_last_reload_successful",
			Help: "Whether the last reload of the rule files (SIGHUP) succeeded: 1, or 0 when it failed and the rules loaded before are still evaluated.",
		}),
		successTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prometheus_config_last_reload_success_timestamp_seconds",
			Help: "When the rule files were last loaded successfully, at start or on SIGHUP, in seconds since the epoch.",
		}),
	}
	m.succeeded(time.Now())
	if reg != nil {
		reg.MustRegister(m.successful, m.successTime)
	}
	return m
}

func (m *reloadMetrics) succeeded(at time.Time) {
	m.successful.Set(1)
	m.successTime.Set(float64(at.UnixNano()) / 1e9)
}

func (m *reloadMetrics) failed() { m.successful.Set(0) }
