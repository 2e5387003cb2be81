// Package fleet builds tcpadvisor's advice for every host at once from a
// Prometheus-compatible server (Prometheus, Thanos, Mimir,
// VictoriaMetrics) that scrapes the daemons and evaluates the rules of
// rules/: the alerts come from the server, the advice from package advisor,
// as the daemon builds it, and the two ends of one flow seen by two scraped
// hosts are joined into one advice.
//
// Every query is bounded on the server side (topk, or a regular expression
// over the targets that have advice) and none is asked once per host: the
// evidence queries of the advisor, asked per alert, are widened to every
// alerting target and asked once (engine.Widen).
package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
)

// DefaultLimit is how many series one query reads at most by default.
const DefaultLimit = 500

// Options say which server to ask and how.
type Options struct {
	// URL is the server's base URL, such as http://prometheus:9090 (for
	// Mimir, the URL of its Prometheus API prefix).
	URL string
	// HTTP holds the client's options: authentication, TLS, headers,
	// proxy (the format of Prometheus' own http_config).
	HTTP config.HTTPClientConfig
	// Match limits the advice to the targets whose alerts match this
	// series selector, such as {job="tcpadvisor",env="prod"}.
	Match string
	// Limit bounds the series of every query (topk on the server).
	Limit int
}

// Client asks one server, counting what it reads.
type Client struct {
	api   v1.API
	url   string
	match string
	limit int

	mu      sync.Mutex
	queries int
	series  int
}

// NewClient checks opts and returns a client of the server.
func NewClient(opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--prometheus.url=%q: want an http:// or https:// URL such as http://prometheus:9090", opts.URL)
	}
	if err := opts.HTTP.Validate(); err != nil {
		return nil, fmt.Errorf("--prometheus.config.file: %w", err)
	}
	httpClient, err := config.NewClientFromConfig(opts.HTTP, "tcpadvisor")
	if err != nil {
		return nil, fmt.Errorf("--prometheus.config.file: %w", err)
	}
	c, err := api.NewClient(api.Config{Address: strings.TrimRight(opts.URL, "/"), Client: httpClient})
	if err != nil {
		return nil, fmt.Errorf("--prometheus.url=%q: %w", opts.URL, err)
	}
	match := ""
	if opts.Match != "" {
		if match, err = engine.ParseSelector(opts.Match); err != nil {
			return nil, fmt.Errorf("--match=%q: %s; want a series selector such as {job=\"tcpadvisor\"}", opts.Match, oneLine(err))
		}
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Client{api: v1.NewAPI(c), url: opts.URL, match: match, limit: limit}, nil
}

// LoadHTTPConfig reads a client configuration file: Prometheus'
// http_config (basic_auth, authorization, bearer_token_file, tls_config,
// http_headers, proxy_url, ...), at the top level of the file.
func LoadHTTPConfig(path string) (config.HTTPClientConfig, error) {
	cfg, _, err := config.LoadHTTPConfigFile(path)
	if err != nil {
		return config.HTTPClientConfig{}, fmt.Errorf("--prometheus.config.file=%s: %s; want Prometheus' http_config fields (basic_auth, authorization, tls_config, http_headers) at the top level", path, oneLine(err))
	}
	return *cfg, nil
}

// Cost is what the server was asked and answered.
type Cost struct {
	// Queries counts the HTTP requests to the server.
	Queries int `json:"queries"`
	// Series counts the series (or alerts) of every answer.
	Series int `json:"series"`
}

// Cost returns what the client has read so far.
func (c *Client) Cost() Cost {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Cost{Queries: c.queries, Series: c.series}
}

func (c *Client) count(series int) {
	c.mu.Lock()
	c.queries++
	c.series += series
	c.mu.Unlock()
}

// query runs an instant query and returns its samples.
func (c *Client) query(ctx context.Context, expr string) ([]engine.Sample, error) {
	value, _, _, err := c.api.Query(ctx, expr, time.Now())
	if err != nil {
		c.count(0)
		return nil, c.explain(ctx, err, "query "+expr)
	}
	var samples []engine.Sample
	switch v := value.(type) {
	case model.Vector:
		for _, s := range v {
			samples = append(samples, engine.Sample{Labels: labelMap(s.Metric), Value: float64(s.Value)})
		}
	case *model.Scalar:
		samples = append(samples, engine.Sample{Labels: map[string]string{}, Value: float64(v.Value)})
	default:
		return nil, fmt.Errorf("--prometheus.url=%s: query %s answered a %s, want an instant vector", c.url, expr, value.Type())
	}
	c.count(len(samples))
	return samples, nil
}

// bounded wraps expr in topk of the client's limit and, with --match, adds
// the selector's matchers to every series selector.
func (c *Client) bounded(expr string) (string, error) {
	if c.match != "" {
		var err error
		if expr, err = engine.WithSelector(expr, c.match); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("topk(%d, %s)", c.limit, expr), nil
}

// rules returns the alerting rules that carry an advice label, with their
// active alerts. match[] asks a server that supports it (Prometheus 3) to
// send only those; an older one sends every rule and they are filtered
// here.
func (c *Client) rules(ctx context.Context) ([]v1.AlertingRule, error) {
	result, err := c.api.Rules(ctx, []string{`{advice!=""}`})
	if err != nil {
		c.count(0)
		return nil, c.explain(ctx, err, "GET /api/v1/rules")
	}
	var out []v1.AlertingRule
	alerts := 0
	for _, g := range result.Groups {
		for _, r := range g.Rules {
			if ar, ok := r.(v1.AlertingRule); ok && ar.Labels["advice"] != "" {
				out = append(out, ar)
				alerts += len(ar.Alerts)
			}
		}
	}
	c.count(alerts)
	return out, nil
}

// explain turns a client error into one line naming the server and the fix.
func (c *Client) explain(ctx context.Context, err error, what string) error {
	var apiErr *v1.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("--prometheus.url=%s: no answer to %s within --timeout; is the server overloaded, or the URL wrong?", c.url, what)
	case errors.As(err, &apiErr) && (strings.HasSuffix(apiErr.Msg, ": 401") || strings.HasSuffix(apiErr.Msg, ": 403")):
		return fmt.Errorf("--prometheus.url=%s: %s: the server refused the request (HTTP %s): give its credentials in --prometheus.config.file (basic_auth, authorization)", c.url, what, apiErr.Msg[len(apiErr.Msg)-3:])
	case errors.As(err, &apiErr) && strings.Contains(apiErr.Detail, "HTTP request to an HTTPS server"):
		return fmt.Errorf("--prometheus.url=%s: %s: the server speaks HTTPS: use https:// in --prometheus.url", c.url, what)
	case errors.As(err, &apiErr) && strings.HasSuffix(apiErr.Msg, ": 404"):
		return fmt.Errorf("--prometheus.url=%s: %s: not found (HTTP 404): is it the server's base URL, with Mimir's /prometheus prefix?", c.url, what)
	case errors.As(err, &apiErr):
		return fmt.Errorf("--prometheus.url=%s: %s: %s", c.url, what, oneLine(errors.New(apiErr.Msg+" "+apiErr.Detail)))
	}
	// net/http says so in an untyped error.
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("--prometheus.url=%s: %s: the server speaks plain HTTP: use http:// in --prometheus.url", c.url, what)
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return fmt.Errorf("--prometheus.url=%s: %s: the server's certificate is not trusted (%s): give its CA in --prometheus.config.file (tls_config: ca_file; server_name when the certificate names another host)", c.url, what, oneLine(certErr.Err))
	}
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return fmt.Errorf("--prometheus.url=%s: %s: %s; is Prometheus running there?", c.url, what, oneLine(err))
	}
	return fmt.Errorf("--prometheus.url=%s: %s: %s", c.url, what, oneLine(err))
}

func labelMap(m model.Metric) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[string(k)] = string(v)
	}
	return out
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// fresh returns a client of the same server with its counts at zero, for
// one report.
func (c *Client) fresh() *Client {
	return &Client{api: c.api, url: c.url, match: c.match, limit: c.limit}
}
