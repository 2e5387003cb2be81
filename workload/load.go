package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connectErrorText is how an app's error page says that connect() failed
// for want of a local port (EADDRNOTAVAIL): Go's and Python's strerror.
const connectErrorText = "cannot assign requested address"

// loadResult is what a load measured.
type loadResult struct {
	// requests counts the requests that ended, successes those answered
	// 200, errors the others, connectErrors the errors due to
	// EADDRNOTAVAIL (nil when the load tool cannot tell).
	requests, successes, errors int64
	connectErrors               *int64
	elapsed                     time.Duration
	// latency is nil when the load tool gives no latencies.
	latency *Histogram
}

// loadCounters are the running totals of a load, for the progress line.
type loadCounters struct {
	requests, errors atomic.Int64
	// done is set when the load has ended.
	done atomic.Bool
}

// add adds the counts of a turn of the load, o, to r. A count that either
// load tool cannot give stays absent.
func (r *loadResult) add(o loadResult) {
	r.requests += o.requests
	r.successes += o.successes
	r.errors += o.errors
	r.elapsed += o.elapsed
	if r.connectErrors != nil && o.connectErrors != nil {
		*r.connectErrors += *o.connectErrors
	} else {
		r.connectErrors = nil
	}
	if r.latency != nil && o.latency != nil {
		r.latency.Merge(o.latency)
	} else {
		r.latency = nil
	}
}

// builtinLoad is a closed loop: concurrency workers, each sending its next
// request when the last is answered, over a keep-alive connection of its
// own, so that the load itself opens no connection after the first. It
// runs in turns (run), on the same connections, and stops for good after
// requests requests in all when requests > 0.
//
// The connections stay open, idle, between turns and until close: the load
// closes first, and its TIME_WAIT toward the server, with no connection
// left, would look like a client without keepalive to the advisor still
// sampling.
type builtinLoad struct {
	base        string
	concurrency int
	requests    int
	counters    *loadCounters
	issued      atomic.Int64
	transports  []*http.Transport
}

func newBuiltinLoad(base string, concurrency, requests int, counters *loadCounters) *builtinLoad {
	l := &builtinLoad{base: base, concurrency: concurrency, requests: requests, counters: counters}
	for range concurrency {
		// One connection, kept alive.
		l.transports = append(l.transports, &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxConnsPerHost:     1,
			MaxIdleConnsPerHost: 1,
			DisableCompression:  true,
		})
	}
	return l
}

// run runs one turn of the load: it stops after duration, when the
// request bound is reached or when ctx is done. At the end of the duration
// each worker finishes the request it is waiting for (10 s at most): a
// request cut short would close its connection.
func (l *builtinLoad) run(ctx context.Context, duration time.Duration) loadResult {
	var mu sync.Mutex
	total := loadResult{latency: &Histogram{}, connectErrors: new(int64)}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(duration)
	another := func() bool {
		return time.Now().Before(deadline) && (l.requests == 0 || l.issued.Add(1) <= int64(l.requests))
	}
	for worker, transport := range l.transports {
		wg.Go(func() {
			w := loadWorker{url: fmt.Sprintf("%s/test/%d", l.base, worker), counters: l.counters}
			w.run(ctx, transport, another)
			mu.Lock()
			defer mu.Unlock()
			total.add(w.res)
		})
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}

// close closes the load's connections.
func (l *builtinLoad) close() {
	for _, t := range l.transports {
		t.CloseIdleConnections()
	}
}

// loadWorker is one client of the closed loop, with results of its own so
// that workers share nothing while they run.
type loadWorker struct {
	url      string
	counters *loadCounters
	res      loadResult
}

func (w *loadWorker) run(ctx context.Context, transport *http.Transport, another func() bool) {
	w.res = loadResult{latency: &Histogram{}, connectErrors: new(int64)}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	for ctx.Err() == nil && another() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
		if err != nil {
			panic(err) // the URL is built by the workload
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				// Cut by the end of the load: not the server's failure.
				return
			}
			w.res.requests++
			w.counters.requests.Add(1)
			w.fail(isAddrNotAvail(err))
			// A server that refuses connections must not make the loop
			// spin.
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if err != nil && ctx.Err() != nil {
			return
		}
		w.res.latency.Record(time.Since(start))
		w.res.requests++
		w.counters.requests.Add(1)
		if err != nil || resp.StatusCode != http.StatusOK {
			w.fail(strings.Contains(strings.ToLower(string(body)), connectErrorText))
			continue
		}
		w.res.successes++
	}
}

// isAddrNotAvail reports whether err is connect() failing for want of a
// local port.
func isAddrNotAvail(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL)
}

func (w *loadWorker) fail(connect bool) {
	w.res.errors++
	w.counters.errors.Add(1)
	if connect {
		*w.res.connectErrors++
	}
}
