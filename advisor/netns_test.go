package advisor

import (
	"strings"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
)

// inNetns puts the label netns="name" on every series of text, as
// --collector.netns does.
func inNetns(name, text string) string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if i := strings.Index(line, "{"); i >= 0 && i < strings.Index(line, " ") {
			line = line[:i+1] + `netns="` + name + `",` + line[i+1:]
		} else {
			line = strings.Replace(line, " ", `{netns="`+name+`"} `, 1)
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// TestEachNamespaceItsOwnSysctls: two namespaces of one host, with their
// own tcp_tw_reuse and port range, each run out of ports toward a
// destination. Each advice quotes its own namespace's values, and each
// namespace's drop-in holds its own changes only.
func TestEachNamespaceItsOwnSysctls(t *testing.T) {
	namespace := func(reuse, low, high, size string) string {
		return strings.NewReplacer("32768", low, "60999", high, "28232", size).Replace(hostSysctls) + twReuse(reuse) + `
tcpadvisor_outbound_port_pressure_ratio{source_address="198.18.0.1",destination_address="198.18.0.2",destination_port="6379"} 0.9
tcpadvisor_outbound_sockets{source_address="198.18.0.1",destination_address="198.18.0.2",destination_port="6379",state="time_wait"} 900
`
	}
	f := newFixture(t, 0.01, inNetns("a", namespace("0", "40000", "40999", "1000"))+inNetns("b", namespace("2", "20000", "29999", "10000")))
	f.run(t, 5*time.Second)
	r := f.report()
	if len(r.Advice) != 2 {
		t.Fatalf("%d advice, want port-pressure in each namespace: %+v", len(r.Advice), r.Advice)
	}
	want := map[string]struct{ reuse, portRange string }{"a": {"0", "40000 40999"}, "b": {"2", "20000 29999"}}
	for _, adv := range r.Advice {
		ns := adv.Target["netns"]
		w, ok := want[ns]
		if adv.ID != PortPressure || !ok {
			t.Fatalf("advice %s in netns %q", adv.ID, ns)
		}
		if !strings.Contains(adv.Recommendation, "(now "+w.reuse+")") || !strings.Contains(adv.Recommendation, "(now "+w.portRange+")") {
			t.Errorf("netns %s: recommendation %q does not quote its own tcp_tw_reuse %s and range %s", ns, adv.Recommendation, w.reuse, w.portRange)
		}
		for _, e := range adv.Evidence {
			if !strings.Contains(e.Query, `netns="`+ns+`"`) {
				t.Errorf("netns %s: evidence query %s reads other namespaces", ns, e.Query)
			}
			if e.Name == "net.ipv4.tcp_tw_reuse" && e.Value != map[string]float64{"a": 0, "b": 2}[ns] {
				t.Errorf("netns %s: evidence tcp_tw_reuse %v", ns, e.Value)
			}
		}
		changes := map[string]SysctlChange{}
		for _, c := range r.ChangesIn(ns) {
			changes[c.Name] = c
		}
		if changes["net.ipv4.tcp_tw_reuse"].Current != w.reuse || changes["net.ipv4.ip_local_port_range"].Current != w.portRange {
			t.Errorf("netns %s: changes %+v, want tcp_tw_reuse now %s, range now %s", ns, changes, w.reuse, w.portRange)
		}
		var b strings.Builder
		if err := WriteDropInFor(&b, r, ns); err != nil {
			t.Fatal(err)
		}
		other := map[string]string{"a": "b", "b": "a"}[ns]
		if !strings.Contains(b.String(), "(now "+w.portRange+")") || strings.Contains(b.String(), "(now "+want[other].portRange+")") {
			t.Errorf("netns %s: drop-in holds another namespace's values:\n%s", ns, b.String())
		}
	}
	if got := r.Changes(); len(got) != 0 {
		t.Errorf("the host's own changes %+v: no advice is about it", got)
	}
	var host strings.Builder
	if err := WriteDropIn(&host, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(host.String(), `Network namespace "a" has sysctl changes of its own`) || strings.Contains(host.String(), "net.ipv4.tcp_tw_reuse = 1") {
		t.Errorf("host drop-in:\n%s", host.String())
	}
}

// TestHostileLabelValues: a namespace (or any target label) named with
// quotes, braces, backslashes and a newline, as a delegated user's cgroup
// or a crafted netns can be, restricts every query to itself: the advice
// quotes its own namespace's values, not its neighbour's.
func TestHostileLabelValues(t *testing.T) {
	hostile := "q\"x{y=\"1\"}\\.service\nor vector(1)"
	escaped := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(hostile)
	namespace := func(reuse string) string {
		return hostSysctls + twReuse(reuse) + `tcpadvisor_outbound_sockets{source_address="198.18.0.1",destination_address="198.18.0.2",destination_port="6379",state="time_wait"} 42` + "\n"
	}
	f := newFixture(t, 1, inNetns(escaped, namespace("0"))+inNetns("q", namespace("2")))
	target := map[string]string{"netns": hostile, "source_address": "198.18.0.1", "destination_address": "198.18.0.2", "destination_port": "6379"}
	f.alerts = []engine.Alert{alert("TcpadvisorEphemeralPortPressure", "port-pressure", "critical", "firing", target)}
	r := f.report()
	if len(r.Advice) != 1 {
		t.Fatalf("%d advice", len(r.Advice))
	}
	adv := r.Advice[0]
	found := 0
	for _, e := range adv.Evidence {
		switch e.Name {
		case "net.ipv4.tcp_tw_reuse":
			found++
			if e.Value != 0 {
				t.Errorf("tcp_tw_reuse %v from %s, want the hostile namespace's 0", e.Value, e.Query)
			}
		case "TIME_WAIT sockets toward 198.18.0.2:6379":
			found++
			if e.Value != 42 {
				t.Errorf("TIME_WAIT %v from %s", e.Value, e.Query)
			}
		}
	}
	if found != 2 {
		t.Errorf("evidence %+v lacks tcp_tw_reuse or TIME_WAIT: the queries did not match the hostile namespace", adv.Evidence)
	}
	if !strings.Contains(adv.Recommendation, "(now 0)") {
		t.Errorf("recommendation %q does not quote the hostile namespace's tcp_tw_reuse", adv.Recommendation)
	}
	if got := r.ChangesIn(hostile); len(got) == 0 || got[0].Current != "0" {
		t.Errorf("changes of the hostile namespace %+v", got)
	}
}
