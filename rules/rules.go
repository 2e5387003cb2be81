// Package rules holds the Prometheus alerting rules that turn the metrics of
// tcpadvisor into advice, and embeds them for the daemon.
//
// The rule files are plain Prometheus rule YAML: a user can load
// tcpadvisor.rules.yml into their own Prometheus unchanged, and the daemon
// evaluates the same bytes, but for the runbook links, which point at its
// own copy of the advice reference (WithRunbooksAt). Every alert carries the labels severity and
// advice; each advice ID is a heading of docs/advice.md, where the alert's
// runbook_url points. The alert names and advice IDs are public API.
package rules

import "embed"

// Files holds the rule files, at its root. The promtool unit tests under
// tests/ are not part of it.
//
//go:embed *.yml
var Files embed.FS
