package engine

import (
	"context"
	"fmt"
	"math"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

// cachedSeries is a series appended in the last cycle.
type cachedSeries struct {
	lset  labels.Labels
	ref   storage.SeriesRef
	cycle uint64
}

// sampler turns gathered metric families into samples, as a scrape would:
// every gauge, counter and untyped metric is a series; summaries and classic
// histograms are flattened into their _sum, _count, quantile and _bucket
// series; the target labels (Options.Labels) are added, and a gathered
// label of the same name is kept as exported_NAME (honor_labels: false).
// Like a scrape's cache, it remembers the series of the last cycle, to
// append by reference and to mark stale those that are gone.
type sampler struct {
	target  labels.Labels
	series  map[string]*cachedSeries
	cycle   uint64
	builder labels.ScratchBuilder
	scratch labels.Labels
	keyBuf  []byte

	// Per cycle.
	app      storage.AppenderV2
	t        int64
	rejected int
	firstErr error
}

func newSampler(target map[string]string) *sampler {
	return &sampler{
		target:  labels.FromMap(target),
		series:  make(map[string]*cachedSeries),
		builder: labels.NewScratchBuilder(16),
	}
}

// append adds the samples of families at t (milliseconds) to app, and a
// staleness marker to every series of the last cycle that is not among
// them. It returns how many series it appended.
func (s *sampler) append(ctx context.Context, app storage.AppenderV2, families []*dto.MetricFamily, t int64) (int, error) {
	s.cycle++
	s.app, s.t, s.rejected, s.firstErr = app, t, 0, nil
	defer func() { s.app = nil }()

	n := 0
	for _, mf := range families {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				s.add(name, m, "", "", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				s.add(name, m, "", "", m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				s.add(name, m, "", "", m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				sum := m.GetSummary()
				for _, q := range sum.GetQuantile() {
					s.add(name, m, "quantile", formatFloat(q.GetQuantile()), q.GetValue())
				}
				s.add(name+"_sum", m, "", "", sum.GetSampleSum())
				s.add(name+"_count", m, "", "", float64(sum.GetSampleCount()))
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				s.addHistogram(name, mf.GetType(), m)
			}
		}
		n += len(mf.GetMetric())
	}

	for key, cs := range s.series {
		if cs.cycle == s.cycle {
			continue
		}
		// Gone since the last cycle: a staleness marker ends the series at
		// once for PromQL, instead of after the lookback delta.
		if _, err := app.Append(cs.ref, cs.lset, 0, t, math.Float64frombits(value.StaleNaN), nil, nil, storage.AOptions{}); err != nil {
			s.reject(err)
		}
		delete(s.series, key)
	}
	if s.rejected > 0 {
		return n, fmt.Errorf("%d samples rejected by the store, the first: %w", s.rejected, s.firstErr)
	}
	return n, nil
}

// addHistogram flattens a classic histogram the way the text exposition
// shows it: cumulative _bucket series up to le="+Inf", then _sum and
// _count (_gsum and _gcount for a gauge histogram). Native histogram
// buckets are not kept.
func (s *sampler) addHistogram(name string, typ dto.MetricType, m *dto.Metric) {
	h := m.GetHistogram()
	sumName, countName := name+"_sum", name+"_count"
	count, sum := float64(h.GetSampleCount()), h.GetSampleSum()
	if typ == dto.MetricType_GAUGE_HISTOGRAM {
		sumName, countName = name+"_gsum", name+"_gcount"
		count = h.GetSampleCountFloat()
		if count == 0 {
			count = float64(h.GetSampleCount())
		}
	}
	infSeen := false
	for _, b := range h.GetBucket() {
		infSeen = infSeen || math.IsInf(b.GetUpperBound(), +1)
		v := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			v = b.GetCumulativeCountFloat()
		}
		s.add(name+"_bucket", m, "le", formatFloat(b.GetUpperBound()), v)
	}
	if !infSeen {
		s.add(name+"_bucket", m, "le", "+Inf", count)
	}
	s.add(sumName, m, "", "", sum)
	s.add(countName, m, "", "", count)
}

// add appends one sample of series name{m's labels, extra="extraValue"}.
func (s *sampler) add(name string, m *dto.Metric, extra, extraValue string, v float64) {
	b := &s.builder
	b.Reset()
	b.Add(model.MetricNameLabel, name)
	for _, lp := range m.GetLabel() {
		ln := lp.GetName()
		if s.target.Has(ln) {
			ln = exportedName(ln, m, s.target)
		}
		b.Add(ln, lp.GetValue())
	}
	if extra != "" {
		b.Add(extra, extraValue)
	}
	s.target.Range(func(l labels.Label) { b.Add(l.Name, l.Value) })
	b.Sort()
	b.Overwrite(&s.scratch)
	s.keyBuf = s.scratch.Bytes(s.keyBuf)

	cs, ok := s.series[string(s.keyBuf)]
	if !ok {
		cs = &cachedSeries{lset: s.scratch.Copy()}
		s.series[string(s.keyBuf)] = cs
	}
	if cs.cycle == s.cycle {
		s.reject(fmt.Errorf("series %s: %w", cs.lset, storage.ErrDuplicateSampleForTimestamp))
		return
	}
	cs.cycle = s.cycle
	ref, err := s.app.Append(cs.ref, cs.lset, 0, s.t, v, nil, nil, storage.AOptions{})
	if err != nil {
		s.reject(err)
		return
	}
	cs.ref = ref
}

func (s *sampler) reject(err error) {
	s.rejected++
	if s.firstErr == nil {
		s.firstErr = err
	}
}

// exportedName is the name a gathered label takes when a target label has
// its name: exported_NAME, with more exported_ prefixes while that is taken
// too, as Prometheus renames them.
func exportedName(name string, m *dto.Metric, target labels.Labels) string {
	taken := func(n string) bool {
		if target.Has(n) {
			return true
		}
		for _, lp := range m.GetLabel() {
			if lp.GetName() == n {
				return true
			}
		}
		return false
	}
	n := "exported_" + name
	for taken(n) {
		n = "exported_" + n
	}
	return n
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, +1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
