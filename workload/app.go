package workload

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// goApp is the seed's app in Go, served in this process: GET /test/{n} sets
// n to 155030303 in Redis, reads it back and returns it.
type goApp struct {
	server    *http.Server
	redisAddr string
	// shared is the one client of the pooled app; nil: a client per
	// request.
	shared *redis.Client
	done   chan struct{}
}

// redisOptions are go-redis' defaults for the app's Redis. Maintenance
// notifications, a Redis Enterprise feature, are off: a Redis without them
// would have go-redis ask on every new connection and log that it cannot.
func redisOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:                     addr,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// startGoApp serves the app on addr until stop.
func startGoApp(ctx context.Context, addr, redisAddr string, pool bool) (*goApp, error) {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, err
	}
	a := &goApp{redisAddr: redisAddr, done: make(chan struct{})}
	if pool {
		// One client per process, shared by every request: go-redis pools
		// its connections (10 per CPU).
		a.shared = redis.NewClient(redisOptions(redisAddr))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /test/{n}", a.handle)
	a.server = &http.Server{Handler: mux}
	go func() {
		defer close(a.done)
		_ = a.server.Serve(ln)
	}()
	if err := waitListening(ctx, addr, a.done, func() error { return errors.New("the app stopped serving") }); err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

func (a *goApp) handle(w http.ResponseWriter, r *http.Request) {
	client := a.shared
	if client == nil {
		// The seed's mistake: a client, and so a connection, per request,
		// closed by the app when the request is done.
		client = redis.NewClient(redisOptions(a.redisAddr))
		defer client.Close()
	}
	n := r.PathValue("n")
	if err := client.Set(r.Context(), n, "155030303", 0).Err(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	v, err := client.Get(r.Context(), n).Result()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, v)
}

// stop closes the listener and every connection, then the shared client.
func (a *goApp) stop() {
	_ = a.server.Close()
	<-a.done
	if a.shared != nil {
		_ = a.shared.Close()
	}
}
