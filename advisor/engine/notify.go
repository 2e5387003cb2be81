package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/notifier"
)

const (
	// alertmanagerTimeout bounds one send, as Prometheus' default
	// alertmanager_config timeout does.
	alertmanagerTimeout = 10 * time.Second
	// drainGrace is how long stopping waits for the queued alerts to be
	// sent before it gives up on them: an unreachable Alertmanager must not
	// hold a shutdown for alertmanagerTimeout per queued batch.
	drainGrace = 3 * time.Second
	// notifierQueueCapacity and the batch size are Prometheus' defaults.
	notifierQueueCapacity = 10000
)

// alertmanagers is the notifier.Manager of the engine, run as Prometheus
// runs it: one alertmanager_config per URL, API v2, static targets.
type alertmanagers struct {
	manager *notifier.Manager
	done    chan struct{} // closed when manager.Run has returned
	abort   context.Context
	cancel  context.CancelFunc
}

// alertmanagerConfig checks an Alertmanager base URL and turns it into the
// alertmanager_config and target Prometheus would use for it.
func alertmanagerConfig(raw string) (*config.AlertmanagerConfig, model.LabelSet, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, nil, fmt.Errorf("alertmanager URL %q: want http://HOST:PORT or https://HOST:PORT, with an optional path prefix", raw)
	}
	cfg := config.DefaultAlertmanagerConfig
	cfg.Scheme = u.Scheme
	cfg.PathPrefix = strings.TrimSuffix(u.Path, "/")
	cfg.Timeout = model.Duration(alertmanagerTimeout)
	cfg.HTTPClientConfig = commoncfg.DefaultHTTPClientConfig
	if u.User != nil {
		password, _ := u.User.Password()
		cfg.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{Username: u.User.Username(), Password: commoncfg.Secret(password)}
	}
	return &cfg, model.LabelSet{model.AddressLabel: model.LabelValue(u.Host)}, nil
}

// startAlertmanagers starts a notifier.Manager sending to urls. Its sends
// run in goroutines of their own, with a bounded queue per Alertmanager:
// Send never blocks a cycle.
func startAlertmanagers(urls []string, registerer prometheus.Registerer, logger *slog.Logger) (*alertmanagers, error) {
	var cfg config.Config
	targets := make(map[string][]*targetgroup.Group)
	for i, raw := range urls {
		amc, target, err := alertmanagerConfig(raw)
		if err != nil {
			return nil, err
		}
		cfg.AlertingConfig.AlertmanagerConfigs = append(cfg.AlertingConfig.AlertmanagerConfigs, amc)
		// The keys ApplyConfig gives the configs (AlertmanagerConfigs.ToMap).
		key := fmt.Sprintf("config-%d", i)
		targets[key] = []*targetgroup.Group{{Targets: []model.LabelSet{target}, Source: key}}
	}

	a := &alertmanagers{done: make(chan struct{})}
	a.abort, a.cancel = context.WithCancel(context.Background())
	a.manager = notifier.NewManager(&notifier.Options{
		QueueCapacity:   notifierQueueCapacity,
		DrainOnShutdown: true,
		Do:              a.do,
		Registerer:      registerer,
	}, model.UTF8Validation, logger)
	if err := a.manager.ApplyConfig(&cfg); err != nil {
		a.cancel()
		return nil, fmt.Errorf("alertmanagers: %w", err)
	}
	tsets := make(chan map[string][]*targetgroup.Group)
	go func() {
		a.manager.Run(tsets)
		close(a.done)
	}()
	// The manager takes the targets from the channel and then syncs them;
	// the second send returns only once it is back for more, so the send
	// loops exist before the first cycle sends anything.
	tsets <- targets
	tsets <- targets
	return a, nil
}

// do sends req as the notifier's default does, but gives up at once when
// the abort context is cancelled, which stop does after drainGrace.
func (a *alertmanagers) do(ctx context.Context, client *http.Client, req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	// The notifier's ctx carries the send timeout and is cancelled once the
	// response is read, which releases this one.
	stop := context.AfterFunc(a.abort, cancel)
	defer stop()
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	return resp, nil
}

// stop stops the manager, leaving its queues drainGrace to empty.
func (a *alertmanagers) stop() {
	a.manager.Stop()
	t := time.AfterFunc(drainGrace, a.cancel)
	<-a.done
	t.Stop()
	a.cancel()
}
