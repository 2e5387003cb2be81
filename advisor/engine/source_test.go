package engine

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// source is a prometheus.Collector whose series the test sets, registered
// in a real prometheus.Registry as the daemon registers the exporter.
type source struct {
	mu     sync.Mutex
	series map[string]sourceSeries
	descs  map[string]*prometheus.Desc // built once per name, as the exporter's are
}

type sourceSeries struct {
	name   string
	typ    prometheus.ValueType
	labels map[string]string
	value  float64
}

// newSource returns the source and the registry that gathers it.
func newSource(t testing.TB) (*source, *prometheus.Registry) {
	t.Helper()
	s := &source{series: make(map[string]sourceSeries), descs: make(map[string]*prometheus.Desc)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	return s, reg
}

func seriesKey(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString("," + k + "=" + labels[k])
	}
	return b.String()
}

// gauge sets a gauge; labelPairs are name, value, name, value...
func (s *source) gauge(name string, v float64, labelPairs ...string) {
	s.set(name, prometheus.GaugeValue, v, labelPairs)
}

func (s *source) counter(name string, v float64, labelPairs ...string) {
	s.set(name, prometheus.CounterValue, v, labelPairs)
}

func (s *source) set(name string, typ prometheus.ValueType, v float64, labelPairs []string) {
	labels := make(map[string]string)
	for i := 0; i+1 < len(labelPairs); i += 2 {
		labels[labelPairs[i]] = labelPairs[i+1]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.series[seriesKey(name, labels)] = sourceSeries{name: name, typ: typ, labels: labels, value: v}
}

// remove deletes a series, as the exporter drops a destination that left
// its top-K.
func (s *source) remove(name string, labelPairs ...string) {
	labels := make(map[string]string)
	for i := 0; i+1 < len(labelPairs); i += 2 {
		labels[labelPairs[i]] = labelPairs[i+1]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.series, seriesKey(name, labels))
}

func (s *source) Describe(chan<- *prometheus.Desc) {}

func (s *source) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ser := range s.series {
		names := slices.Sorted(maps.Keys(ser.labels))
		values := make([]string, len(names))
		for i, n := range names {
			values[i] = ser.labels[n]
		}
		descKey := ser.name + "{" + strings.Join(names, ",")
		desc, ok := s.descs[descKey]
		if !ok {
			desc = prometheus.NewDesc(ser.name, "Test series.", names, nil)
			s.descs[descKey] = desc
		}
		ch <- prometheus.MustNewConstMetric(desc, ser.typ, ser.value, values...)
	}
}
