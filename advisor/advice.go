// Package advisor turns the alerts that tcpadvisor's rules fire into advice:
// what to change, toward which destination or port, with the evidence and
// the exact fix. Finding the alerts is the engine's job (advisor/engine);
// showing the advice is the renderers' (advisor/render).
//
// Each advice is one file of this package (pool.go, port_pressure.go, ...)
// whose init registers its ID, the alerts that raise it, its evidence, its
// recommendation and its fixes; what several advices share (which server
// speaks which protocol, the clients' code, the well-known ports) is in
// services.go. To add an advice, add its file, its rule in rules/ (with the
// advice label), the regenerated PrometheusRule and its section "## ID" in
// docs/advice.md: registry_test.go fails until all four agree.
package advisor

import (
	"fmt"
	"time"

	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
)

// ID names an advice. It is the `advice` label of the rules, the anchor of
// its section in docs/advice.md, and a public API: silences and users'
// routes match on it. Each ID is declared in the file of its advice.
type ID string

// Report is the advice of one moment. Its JSON form is a public API, pinned
// by a golden file: add fields, never rename or remove them.
type Report struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Advice holds the firing alerts' advice, most severe first.
	Advice []Advice `json:"advice"`
	// Pending holds the advice whose condition holds but not yet for as
	// long as its rule's for: asks.
	Pending []Advice `json:"pending"`
	// WarmingUp is true until the advisor has observed the longest for:
	// and range of its rules (WarmUntil): until then an empty Advice
	// means "not yet known", not "nothing to change".
	WarmingUp bool       `json:"warming_up"`
	WarmUntil *time.Time `json:"warm_until,omitempty"`
}

// Advice is one thing to change.
type Advice struct {
	ID       ID     `json:"id"`
	Alert    string `json:"alert"`
	Severity string `json:"severity"`
	// State is "firing" or "pending".
	State string `json:"state"`
	// Since is when the condition started to hold.
	Since time.Time `json:"since"`
	// Target holds the labels that say where: source_address,
	// destination_address and destination_port, or port; and netns, and
	// any label other than instance and job that a Prometheus adds.
	Target map[string]string `json:"target"`
	// Scope holds the labels of the alert that say which host and
	// network namespace the evidence was read from (instance, job, netns
	// and any other label that is not about the flow): every query of
	// the advice is restricted to them.
	Scope          map[string]string `json:"scope,omitempty"`
	Summary        string            `json:"summary"`
	Description    string            `json:"description"`
	Evidence       []Evidence        `json:"evidence"`
	Recommendation string            `json:"recommendation"`
	Fixes          []Fix             `json:"fixes"`
	// Sysctls are the sysctl changes this advice justifies, if any.
	Sysctls    []SysctlChange `json:"sysctls"`
	RunbookURL string         `json:"runbook_url"`
	// Owner is who holds most of the sockets the advice is about, when
	// the exporter attributes sockets to owners and knows this one.
	Owner *Owner `json:"owner,omitempty"`
	// Client is who opens the connections of a churning flow, and Server
	// what serves them, when the advisor knows (churn advice only).
	Client *Owner   `json:"client,omitempty"`
	Server *Service `json:"server,omitempty"`
	// Alerts names every alert this advice answers: two alerts that see one
	// flow from both of its ends give one advice.
	Alerts []string `json:"alerts,omitempty"`

	// flowKey is the same for two churn advices about one flow, seen from
	// its client and from its server on this host.
	flowKey string
}

// Service is the server side of a flow: what listens at an address and
// port, and the protocol the advice is chosen by.
type Service struct {
	Address string `json:"address"`
	Port    string `json:"port"`
	// Name is what the server is called in the advice: its process when it
	// listens on this host ("redis-server"), else the protocol's name
	// ("Redis") or "".
	Name string `json:"name"`
	// Protocol is redis, postgresql, mysql, memcached, http, or "" when
	// the advisor cannot tell.
	Protocol string `json:"protocol"`
	// KnownBy says how the protocol was found: "listener" (the process of
	// the listening socket on this host), "port" (a well-known port),
	// "runtime" (the listening process's language runtime) or "" (not
	// found).
	KnownBy string `json:"known_by"`
	// Owner is the listener's owner, when it listens on this host.
	Owner *Owner `json:"owner,omitempty"`
}

// Owner is who an advice is about: a socket owner as the exporter
// attributes it (a systemd unit or container and a process name, in
// tcpadvisor_outbound_owner_sockets and the other owner series), with what
// the advisor found of it.
type Owner struct {
	owners.Owner
	// Runtime is the process's language runtime, when the exporter could
	// tell it (tcpadvisor_owner_runtime_info): "go", "python", ...
	Runtime string  `json:"runtime,omitempty"`
	Sockets float64 `json:"sockets"`
}

// String names the owner as the advice's text does.
// A unit whose process the exporter could not find is named alone.
func (o Owner) String() string {
	if o.Process == "" || o.Process == "unknown" {
		return o.Unit
	}
	if o.Unit == "" || o.Unit == "unknown" {
		return "process " + o.Process
	}
	return fmt.Sprintf("%s (process %s)", o.Unit, o.Process)
}

// Evidence is one measured value behind an advice.
type Evidence struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	// Query is the PromQL that measured it, to paste into Prometheus.
	Query string `json:"query"`
}

// Fix is one concrete change: code, configuration or commands.
type Fix struct {
	Title string `json:"title"`
	// Language says how to read Text: go, python, nginx, sysctl, shell.
	Language string `json:"language"`
	Text     string `json:"text"`
}

// SysctlChange is one sysctl to set, with why.
type SysctlChange struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	Current string `json:"current"`
	Reason  string `json:"reason"`
}
