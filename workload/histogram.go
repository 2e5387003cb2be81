package workload

import (
	"math"
	"time"
)

// The latency histogram's buckets grow by 5 % from 10 µs; the last one
// holds everything from about 89 s on, past the load's request timeout.
// Memory is fixed whatever the number of requests, and a quantile is off by
// at most half a bucket, 2.5 %.
const (
	histogramFirst   = 10 * time.Microsecond
	histogramGrowth  = 1.05
	histogramBuckets = 330
)

// Histogram counts durations in fixed logarithmic buckets. The zero value is
// empty and ready.
type Histogram struct {
	// counts[0] holds durations below histogramFirst; counts[i] those in
	// [lower(i), lower(i+1)).
	counts [histogramBuckets]uint64
	total  uint64
}

// lower is the lower bound of bucket i >= 1.
func lower(i int) float64 {
	return float64(histogramFirst) * math.Pow(histogramGrowth, float64(i-1))
}

// Record counts one duration.
func (h *Histogram) Record(d time.Duration) {
	i := 0
	if d >= histogramFirst {
		i = 1 + int(math.Log(float64(d)/float64(histogramFirst))/math.Log(histogramGrowth))
		i = min(i, histogramBuckets-1)
	}
	h.counts[i]++
	h.total++
}

// Merge adds the counts of o.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// Count is the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Quantile returns the q-quantile (0 < q <= 1) of the recorded durations:
// the geometric middle of the bucket that holds it; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		if i == 0 {
			return histogramFirst / 2
		}
		return time.Duration(lower(i) * math.Sqrt(histogramGrowth))
	}
	return time.Duration(lower(histogramBuckets - 1))
}
