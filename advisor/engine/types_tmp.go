package engine

import "time"

// Alert mirrors the engine's API until the engine branch lands.
type Alert struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	State       string
	ActiveAt    time.Time
	FiredAt     time.Time
	Value       float64
}

// Sample mirrors the engine's API until the engine branch lands.
type Sample struct {
	Labels map[string]string
	Value  float64
}
