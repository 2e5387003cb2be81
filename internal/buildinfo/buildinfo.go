// Package buildinfo completes the build information that
// github.com/prometheus/common/version reports (--version, the landing page,
// tcpadvisor_build_info) when the build did not stamp it with -ldflags, as
// deploy/deb/build.sh and the Dockerfile do.
package buildinfo

import (
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/common/version"
)

// Unknown is what a field reads when neither -ldflags nor Go's embedded
// VCS information gave it.
const Unknown = "unknown"

// dateLayout is the layout of BuildDate that promu, the Prometheus
// projects' build tool, stamps.
const dateLayout = "20060102-15:04:05"

// Stamp fills in the fields of package version that -ldflags left empty:
// the version from release (the repository's VERSION file), and the build
// date from the time of the commit built, which Go embeds when it builds
// from a clone (go build -buildvcs, the default there). The commit time
// rather than the clock keeps the build reproducible, as SOURCE_DATE_EPOCH
// does for Debian. The revision already comes from the embedded VCS
// information through package version. Go records no branch and no user:
// those, and whatever a build with -buildvcs=false lacks, read "unknown"
// rather than empty.
func Stamp(release string) {
	info, _ := debug.ReadBuildInfo()
	stamp(release, info)
}

func stamp(release string, info *debug.BuildInfo) {
	if version.Version == "" {
		version.Version = strings.TrimSpace(release)
	}
	if version.BuildDate == "" {
		version.BuildDate = commitTime(info)
	}
	for _, field := range []*string{&version.Branch, &version.BuildUser} {
		if *field == "" {
			*field = Unknown
		}
	}
}

// commitTime returns the time of the commit built, in promu's layout, or
// Unknown.
func commitTime(info *debug.BuildInfo) string {
	if info == nil {
		return Unknown
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.time" {
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				return t.UTC().Format(dateLayout)
			}
		}
	}
	return Unknown
}
