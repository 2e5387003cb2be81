package buildinfo

import (
	"runtime/debug"
	"testing"

	"github.com/prometheus/common/version"
)

func TestStamp(t *testing.T) {
	vcs := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "c83f02b0c1a3"},
		{Key: "vcs.time", Value: "2026-12-02T15:04:05Z"},
	}}
	noVCS := &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "-buildvcs", Value: "false"}}}
	type fields struct{ version, branch, user, date string }
	tests := []struct {
		name    string
		ldflags fields // what -ldflags set
		info    *debug.BuildInfo
		want    fields
	}{
		{"go build in a clone", fields{}, vcs, fields{"0.1.0-dev", Unknown, Unknown, "20261202-15:04:05"}},
		{"go build -buildvcs=false", fields{}, noVCS, fields{"0.1.0-dev", Unknown, Unknown, Unknown}},
		{"no build information", fields{}, nil, fields{"0.1.0-dev", Unknown, Unknown, Unknown}},
		{"stamped with -ldflags", fields{"0.2.0", "main", "builder@host", "20261201-10:00:00"}, vcs, fields{"0.2.0", "main", "builder@host", "20261201-10:00:00"}},
	}
	saved := fields{version.Version, version.Branch, version.BuildUser, version.BuildDate}
	t.Cleanup(func() {
		version.Version, version.Branch, version.BuildUser, version.BuildDate = saved.version, saved.branch, saved.user, saved.date
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version.Version, version.Branch, version.BuildUser, version.BuildDate = tt.ldflags.version, tt.ldflags.branch, tt.ldflags.user, tt.ldflags.date
			stamp(" 0.1.0-dev\n", tt.info)
			if got := (fields{version.Version, version.Branch, version.BuildUser, version.BuildDate}); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
