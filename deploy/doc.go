// Package deploy holds what runs tcpadvisor in production, as files: the
// systemd units (systemd/), the Prometheus and Alertmanager configurations
// (prometheus/), the Kubernetes manifests (kubernetes/) and the script that
// builds the Debian package (deb/). The Grafana dashboard is in dashboards/
// at the root of the repository.
//
// There is no code here: the tests of this package check those files with
// the programs that read them in production (systemd-analyze, promtool,
// amtool, dpkg), run the daemon as each of them would, and run it end to end
// with Debian's real Prometheus and Alertmanager.
package deploy
