package advisor

import (
	"fmt"
	"maps"
	"slices"
)

// definition is everything the advisor knows about one advice beyond its
// alerts: each lives in a file of its own, which registers it.
type definition struct {
	id ID
	// alerts are the names of the alerts whose advice label is id.
	alerts []string
	// evidence lists the series to show, given the alert's target.
	evidence func(t Target) []evidenceQuery
	// recommendation says what to change, in a sentence or three.
	recommendation func(s situation) string
	// fixes are the exact changes, specialised from the situation.
	fixes func(s situation) []Fix
	// sysctls are the sysctl changes the advice justifies.
	sysctls func(s situation) []SysctlChange
}

// evidenceQuery is one series to show.
type evidenceQuery struct {
	name string
	// expr is PromQL as a rule would write it: the advisor adds the
	// target's scope and match to every selector, and scales its windows
	// as the engine scales the rules'.
	expr  string
	match map[string]string
	// by, when set, names each sample of the result by this label.
	by string
}

// situation is what an advice's texts are made from.
type situation struct {
	target Target
	facts  facts
	// owner is who holds most of the target's sockets; client and server
	// are the two ends of a churning flow, when known.
	owner  *Owner
	client *Owner
	server *Service
}

// registry holds every advice, by ID. It is filled by the init functions of
// the advice files and only read after.
var registry = map[ID]*definition{}

// register adds an advice to the registry. Two advices with one ID, or an
// advice that no alert raises, are programming errors.
func register(d definition) {
	if _, dup := registry[d.id]; dup {
		panic(fmt.Sprintf("advisor: advice %q registered twice", d.id))
	}
	if len(d.alerts) == 0 || d.evidence == nil || d.recommendation == nil {
		panic(fmt.Sprintf("advisor: advice %q needs alerts, evidence and a recommendation", d.id))
	}
	registry[d.id] = &d
}

// IDs returns the ID of every advice the advisor knows, sorted.
func IDs() []ID { return slices.Sorted(maps.Keys(registry)) }

// Alerts returns the names of the alerts that raise an advice, as its rules
// name them in their alert: and advice labels; nil for an unknown ID.
func Alerts(id ID) []string {
	if d, ok := registry[id]; ok {
		return slices.Clone(d.alerts)
	}
	return nil
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
