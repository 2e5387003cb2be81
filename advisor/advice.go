// Package advisor turns the alerts that tcpadvisor's rules fire into advice:
// what to change, toward which destination or port, with the evidence and
// the exact fix. Finding the alerts is the engine's job (advisor/engine);
// showing the advice is the renderers' (advisor/render).
package advisor

import (
	"fmt"
	"time"
)

// ID names an advice. It is the `advice` label of the rules, the anchor of
// its section in docs/advice.md, and a public API: silences and users'
// routes match on it.
type ID string

// The advice IDs.
const (
	Pool                        ID = "pool"
	UpstreamKeepalive           ID = "upstream-keepalive"
	PortPressure                ID = "port-pressure"
	TimeWaitBucketOverflow      ID = "tw-bucket-overflow"
	ServicePortInEphemeralRange ID = "service-port-in-ephemeral-range"
	AcceptQueueOverflow         ID = "accept-queue-overflow"
	SynQueueOverflow            ID = "syn-queue-overflow"
	CloseWaitLeak               ID = "close-wait-leak"
	Orphans                     ID = "orphans"
	ConntrackFull               ID = "conntrack-full"
	TwRecycleSet                ID = "tw-recycle-set"
)

// IDs lists every advice ID.
var IDs = []ID{Pool, UpstreamKeepalive, PortPressure, TimeWaitBucketOverflow, ServicePortInEphemeralRange,
	AcceptQueueOverflow, SynQueueOverflow, CloseWaitLeak, Orphans, ConntrackFull, TwRecycleSet}

// Report is the advice of one moment. Its JSON form is a public API, pinned
// by a golden file: add fields, never rename or remove them.
type Report struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Advice holds the firing alerts' advice, most severe first.
	Advice []Advice `json:"advice"`
	// Pending holds the advice whose condition holds but not yet for as
	// long as its rule's for: asks.
	Pending []Advice `json:"pending"`
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
	// destination_address and destination_port, or port.
	Target         map[string]string `json:"target"`
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
}

// Owner is a systemd unit or container and a process name, as the exporter
// attributes sockets (tcpadvisor_outbound_owner_sockets,
// tcpadvisor_inbound_owner_sockets).
type Owner struct {
	Unit    string `json:"unit"`
	Process string `json:"process"`
	// Runtime is the process's language runtime, when the exporter could
	// tell it (tcpadvisor_owner_runtime_info): "go", "python", ...
	Runtime string  `json:"runtime,omitempty"`
	Sockets float64 `json:"sockets"`
}

// String names the owner as the advice's text does.
func (o Owner) String() string {
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
