package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tcpadvisor/tcpadvisor/advisor"
)

var update = flag.Bool("update", false, "rewrite the golden files from this run")

func sampleReport() advisor.Report {
	since := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	return advisor.Report{
		GeneratedAt: since.Add(10 * time.Minute),
		Advice: []advisor.Advice{{
			ID: advisor.PortPressure, Alert: "TcpadvisorEphemeralPortPressure", Severity: "critical", State: "firing", Since: since,
			Target:      map[string]string{"source_address": "10.0.0.1", "destination_address": "10.0.0.5", "destination_port": "6379"},
			Summary:     "Ephemeral ports toward 10.0.0.5:6379 at 93%",
			Description: "26,250 of 28,232 usable ports are held toward 10.0.0.5:6379.",
			Evidence: []advisor.Evidence{
				{Name: "TIME_WAIT sockets toward 10.0.0.5:6379", Value: 26248, Query: `tcpadvisor_outbound_sockets{state="time_wait"}`},
				{Name: "port-pressure ratio toward 10.0.0.5:6379", Value: 0.9298, Query: `tcpadvisor_outbound_port_pressure_ratio`},
			},
			Recommendation: "The ephemeral ports toward 10.0.0.5:6379 are running out. Open fewer connections: a pool.",
			Fixes:          []advisor.Fix{{Title: "sysctl net.ipv4.tcp_tw_reuse", Language: "sysctl", Text: "# relief (now 2)\nnet.ipv4.tcp_tw_reuse = 1\n"}},
			Sysctls:        []advisor.SysctlChange{{Name: "net.ipv4.tcp_tw_reuse", Value: "1", Current: "2", Reason: "relief"}},
			RunbookURL:     "https://github.com/tcpadvisor/tcpadvisor/blob/main/docs/advice.md#port-pressure",
		}},
		Pending: []advisor.Advice{{
			ID: advisor.UpstreamKeepalive, Alert: "TcpadvisorServerSideChurn", Severity: "warning", State: "pending", Since: since,
			Target: map[string]string{"port": "5000"}, Summary: "Service port 5000: <script>TIME_WAIT</script> from 1 peer",
			Evidence: []advisor.Evidence{}, Fixes: []advisor.Fix{}, Sysctls: []advisor.SysctlChange{},
		}},
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (rerun with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (rerun with -update if meant):\n%s", path, got)
	}
}

// TestJSONSchema pins the JSON that `tcpadvisor advise --output json` and
// GET /advice?format=json give: programs parse it.
func TestJSONSchema(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/report.json", b.Bytes())
	var back advisor.Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back.Advice) != 1 || back.Advice[0].Evidence[1].Value != 0.9298 {
		t.Errorf("the JSON does not read back: %v %+v", err, back)
	}
}

func TestText(t *testing.T) {
	var b bytes.Buffer
	if err := Text(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/report.txt", b.Bytes())

	b.Reset()
	Text(&b, advisor.Report{})
	if got := b.String(); got != "tcpadvisor: no advice: nothing to change.\n" {
		t.Errorf("empty report reads %q", got)
	}
}

func TestHTMLEscapes(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<title>tcpadvisor: advice</title>", "port-pressure: 10.0.0.1 -&gt; 10.0.0.5:6379", "net.ipv4.tcp_tw_reuse = 1", "&lt;script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>TIME_WAIT") {
		t.Error("a label value reached the page unescaped")
	}
}

func TestTargetAndValue(t *testing.T) {
	for in, want := range map[string]string{
		Target(map[string]string{"source_address": "::1", "destination_address": "::1", "destination_port": "80"}): "::1 -> [::1]:80",
		Target(map[string]string{"port": "22"}):       "port 22",
		Target(nil):                                   "this host",
		Target(map[string]string{"b": "2", "a": "1"}): "a=1 b=2",
		Value(13155):                                  "13155",
		Value(0.92981):                                "0.93",
	} {
		if in != want {
			t.Errorf("got %q, want %q", in, want)
		}
	}
}

// TestWarmingUp: an empty report of an advisor that has not yet watched
// its slowest rule's window says so and until when, in text and HTML, not
// "nothing to change".
func TestWarmingUp(t *testing.T) {
	until := time.Date(2026, 11, 27, 12, 5, 0, 0, time.UTC)
	r := advisor.Report{WarmingUp: true, WarmUntil: &until}
	var b bytes.Buffer
	Text(&b, r)
	if got, want := b.String(), "tcpadvisor: no advice yet: warming up until 2026-11-27 12:05:00 UTC, when the advisor will have watched as long as its slowest rule needs.\n"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	b.Reset()
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if page := b.String(); !strings.Contains(page, "warming up until 2026-11-27 12:05:00 UTC") || strings.Contains(page, "nothing to change") {
		t.Errorf("page does not say it is warming up:\n%s", page)
	}
}
